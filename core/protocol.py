"""wsgen's WebSocket protocol class for uvicorn (``uvicorn.Config(ws=...)``).

It is uvicorn's websockets-sansio implementation with what wsgen needs on top.
uvicorn is pinned exactly in pyproject.toml because this class relies on the
internals of that implementation; ``tests/test_protocol.py`` is its contract.

Today it adds one fix: after a denial response (an HTTP refusal before the
upgrade) uvicorn 0.54 leaves ``handshake_complete`` false, and ``run_asgi``
then logs "ASGI callable returned without completing handshake." at ERROR on
every refused token (Kludex/uvicorn PR #3138, open). We mark the handshake
complete once the denial is on the wire, as uvicorn's wsproto implementation does.
"""

from __future__ import annotations

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class WsgenProtocol(WebSocketsSansIOProtocol):
    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get(
            "more_body", False
        ):
            self.handshake_complete = True
