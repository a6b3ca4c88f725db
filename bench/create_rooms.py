"""Create the benchmark's chat rooms through wsgen's HTTP API.

The shared harness (``--setup-cmd``) pipes ``{"rooms": {"<room id>": ["<user>", ...]}}``
on stdin before each scenario; each room is created with its participants, so the
server checks participation on every join exactly as in production.

    python bench/create_rooms.py --url http://127.0.0.1:8000 --api-key KEY < plan.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx


async def create_all(url: str, api_key: str, rooms: dict[str, list[str]]) -> int:
    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as api:
        semaphore = asyncio.Semaphore(32)

        async def create(room_id: str, users: list[str]) -> int:
            async with semaphore:
                response = await api.post(
                    "/api/internal/chat-rooms", json={"id": room_id, "participants": users}
                )
            if response.status_code not in (201, 409):  # 409: made by an earlier run
                print(f"room {room_id}: {response.status_code} {response.text}", file=sys.stderr)
                return 1
            return 0

        failures = await asyncio.gather(*(create(r, u) for r, u in rooms.items()))
    return sum(failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    rooms = json.load(sys.stdin)["rooms"]
    failed = asyncio.run(create_all(args.url, args.api_key, rooms))
    print(f"created {len(rooms) - failed}/{len(rooms)} rooms", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
