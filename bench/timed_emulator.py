"""The CXone emulator with a receipt clock, for bench/customer_message.py.

    python bench/timed_emulator.py serve [cxone-emulator serve options]

Exactly `cxone-emulator serve` (same options, same app), wrapped in one pure ASGI layer that
notes the wall-clock time (`time.time()`, the clock every process on the machine shares) at
which each `POST {base}/channels/{id}/messages` reached the emulator's app, keyed by the body's
`idOnExternalPlatform`. The first receipt of an id counts (a retry does not move it).

    GET    /bench/receipts   -> {"receipts": {"msg_…": 1764017000.123456, …}}
    DELETE /bench/receipts   -> forget them

Why not the emulator's own request log: it keeps only the newest 10,000 entries, stamps them
with millisecond ISO times *after* the response, and holds every request and response body.
Why not the emulator inside the load generator: it would share the generator's event loop and
GIL, so the generator's own send schedule would be disturbed by the emulator's work.
"""

from __future__ import annotations

import gc
import json
import re
import sys
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxone_emulator.app import create_app
from cxone_emulator.cli import build_parser, config_from_args

CREATE = re.compile(r"/channels/[^/]+/messages$")


class ReceiptClock:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.receipts: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/bench/receipts":
            await self._answer(scope["method"], send)
            return
        if scope["method"] != "POST" or not CREATE.search(path):
            await self.app(scope, receive, send)
            return
        at = time.time()
        chunks: list[bytes] = []
        while True:
            incoming = await receive()
            chunks.append(incoming.get("body", b""))
            if not incoming.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            message_id = json.loads(body).get("idOnExternalPlatform")
        except (ValueError, AttributeError):
            message_id = None
        if isinstance(message_id, str):
            self.receipts.setdefault(message_id, at)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _answer(self, method: str, send: Send) -> None:
        payload: dict[str, Any] = {"receipts": self.receipts}
        if method == "DELETE":
            self.receipts = {}
            payload = {"cleared": True}
        raw = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": raw})


def main() -> None:
    args = build_parser().parse_args(sys.argv[1:])
    app = ReceiptClock(create_app(config_from_args(args)))
    gc.collect()  # as `cxone-emulator serve` does
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
