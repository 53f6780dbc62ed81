"""The platform's webhook endpoint for benchmarks: answers every request `204` at once.

    python bench/receiver.py PORT

Raw asyncio (uvloop when installed), keep-alive, no signature check: it must cost the
machine as little as possible so that the middleware's figures are the middleware's.
`GET /count` answers `{"received": N, "connections": M}`: the POSTs received since start, i.e.
the webhook deliveries (how the sustained benchmark tells delivered from accepted), and the
connections accepted (a client that keeps its connections alive opens few).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

ANSWER = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
received = 0
connections = 0


def count_answer() -> bytes:
    body = json.dumps({"received": received, "connections": connections}).encode()
    head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global received, connections
    connections += 1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if head.startswith(b"GET /count "):
                writer.write(count_answer())
                continue
            if head.startswith(b"POST "):
                received += 1
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
