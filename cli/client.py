"""``wsgen client``: a terminal WebSocket client for trying routes by hand.

Each line typed is sent: a line starting with ``{`` as it is (a raw envelope),
any other line as ``{"type": "chat.message", "data": {"text": line}}``. Every
frame received is printed as one JSON line.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import orjson
import typer
import websockets

from cli.token import mint


def client_command(
    path: Annotated[str, typer.Argument(help="Route path, e.g. /ws/comms/chat-rooms/<room>.")],
    user: Annotated[
        str | None, typer.Option("--user", help="Mint a token for this user id.")
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="Use this token.")] = None,
    url: Annotated[str, typer.Option("--url", help="Server address.")] = "ws://127.0.0.1:8000",
) -> None:
    """Connect to PATH, print what arrives, send what you type (Ctrl-D to quit)."""
    if token is None:
        if user is None:
            typer.echo("error: give --user (a token is minted) or --token", err=True)
            raise typer.Exit(1)
        token = mint(user, 3600)
    try:
        code = asyncio.run(_session(url.rstrip("/") + path, token))
    except (OSError, websockets.InvalidStatus, websockets.InvalidURI) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"closed: {code}", err=True)


async def _session(url: str, token: str) -> int | None:
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        printer = asyncio.create_task(_print_frames(ws))
        loop = asyncio.get_running_loop()
        while not printer.done():
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                await ws.send(line)
            else:
                envelope = {"type": "chat.message", "data": {"text": line}}
                await ws.send(orjson.dumps(envelope).decode())
        await ws.close()
        await printer
        return ws.close_code


async def _print_frames(ws: websockets.ClientConnection) -> None:
    try:
        async for frame in ws:
            print(frame if isinstance(frame, str) else frame.hex(), flush=True)
    except websockets.ConnectionClosed:
        pass
