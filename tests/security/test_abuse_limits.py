"""Abuse limits: slow and crowding HTTP clients, widget floods, uploads, token guessing.

Everything over real sockets on loopback: the server as `byoc serve` configures it, the widget
protocol over WebSockets, uploads and token requests over HTTP, the CXone emulator over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from byoc.clock import ManualClock
from byoc.settings import Settings
from byoc.store import Database, messages
from byoc.store import schema as t
from tests.support import loopback, seed
from tests.support.emulator import Emulator
from tests.support.problems import assert_problem
from tests.support.servers import byoc_serve
from tests.support.stack import Stack, running_stack
from tests.support.waiting import advance, run_async, wait_for
from tests.support.webchat import Webchat
from tests.support.widget import Widget, agent_reply, custom_webchat, widget

# --- the HTTP server -------------------------------------------------------------------------


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'byoc.db'}", **overrides)


async def _closed_by_server(reader: asyncio.StreamReader, wait: float) -> bytes | None:
    """What the server sent before closing, or None if it is still open after `wait`."""
    try:
        async with asyncio.timeout(wait):
            return await reader.read()
    except TimeoutError:
        return None
    except ConnectionResetError:
        # Closed with bytes of ours still unread in its receive buffer: the kernel sends a
        # reset rather than a FIN. Closed all the same, and nothing was answered.
        return b""


async def test_a_client_dribbling_its_headers_is_cut_off(tmp_path: Path) -> None:
    with byoc_serve(_settings(tmp_path, http_header_timeout_seconds=1.0)) as server:
        url, port = server.url, server.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        answer: bytes | None = None
        while answer is None and sent < 20:  # 20 lines, 0.3 s apart: 6 s of dribbling
            writer.write(f"X-Slow-{sent}: 1\r\n".encode())
            sent += 1
            answer = await _closed_by_server(reader, 0.3)
        writer.close()
        assert answer is not None, "the server waited for the whole dribbled head"
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert sent < 20
        # A client that sends its head in time is served as usual.
        async with loopback.async_client(base_url=url) as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_an_idle_kept_alive_connection_is_closed(tmp_path: Path) -> None:
    with byoc_serve(_settings(tmp_path, http_keep_alive_timeout_seconds=1)) as server:
        port = server.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        # uvicorn's own default would keep it for 5 s.
        assert await _closed_by_server(reader, 3.0) == b""
        writer.close()


async def test_a_crowd_of_slow_clients_does_not_lock_out_healthz(tmp_path: Path) -> None:
    crowd = 500
    settings = {"http_max_connections": 100, "http_header_timeout_seconds": 30.0}
    with byoc_serve(_settings(tmp_path, **settings)) as server:
        url, port = server.url, server.port
        slow: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for _ in range(crowd):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the rest
                slow.append((reader, writer))
            async with loopback.async_client(base_url=url, timeout=10) as http:
                for _ in range(5):
                    assert (await http.get("/healthz")).status_code == 200
            still_open = 0
            for reader, _ in slow:
                if await _closed_by_server(reader, 0.01) is None:
                    still_open += 1
            # The bound holds: the oldest slow clients made room for the newer ones.
            assert still_open <= 100, still_open
        finally:
            for _, writer in slow:
                writer.close()


# --- the token endpoint ------------------------------------------------------------------------


@contextlib.contextmanager
def _token_endpoint(
    tmp_path: Path, emulator: Emulator, **budgets: Any
) -> Iterator[tuple[Stack, Callable[[str, str], httpx.Response]]]:
    """A stack with these failure budgets, and a token request by client id and secret."""
    with (
        running_stack(tmp_path, emulator, **budgets) as stack,
        loopback.client(base_url=stack.url, timeout=10) as http,
    ):

        def token(client_id: str, secret: str) -> httpx.Response:
            return http.post(
                "/integration/box/1.0/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            )

        yield stack, token


def test_failed_token_requests_are_throttled_per_client_and_per_address(
    tmp_path: Path, emulator: Emulator
) -> None:
    budgets = {"token_failures_per_client": "3/minute", "token_failures_per_address": "5/minute"}
    with _token_endpoint(tmp_path, emulator, **budgets) as (stack, token):
        for _ in range(3):
            assert token(stack.client_id, "wrong").status_code == 401
        refused = token(stack.client_id, "wrong")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:byoc:problem:too-many-attempts"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # The right secret does not lift the block: guessing must not be told when it hit.
        assert token(stack.client_id, stack.client_secret).status_code == 429

        # Another client id from the same address: two more failures spend the address.
        for _ in range(2):
            assert token("byoc_" + secrets.token_hex(4), "wrong").status_code == 401
        assert token("byoc_" + secrets.token_hex(4), "wrong").status_code == 429


def test_an_address_that_spent_its_budget_still_gets_a_token_with_the_right_secret(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Failures with made-up client ids spend the address's budget, which CXone may share with
    them (an ingress, a NAT): a right secret from there is still answered, a wrong one is 429."""
    budgets = {"token_failures_per_address": "5/minute"}
    with _token_endpoint(tmp_path, emulator, **budgets) as (stack, token):
        for _ in range(5):
            assert token("byoc_" + secrets.token_hex(4), "wrong").status_code == 401
        assert token("byoc_" + secrets.token_hex(4), "wrong").status_code == 429
        granted = token(stack.client_id, stack.client_secret)
        assert granted.status_code == 200, granted.text
        assert granted.json()["access_token"]
        assert token(stack.client_id, "wrong").status_code == 429


# --- the widget ------------------------------------------------------------------------------


async def _send_many(w: Widget, count: int) -> tuple[int, int]:
    """Send `count` messages at once; how many were acknowledged and how many rate-limited."""
    ids = [f"c-{secrets.token_hex(4)}" for _ in range(count)]
    for client_id in ids:
        await w.send({"type": "message", "clientId": client_id, "text": "hi"})
    acked = limited = 0
    pending = set(ids)
    async with asyncio.timeout(20):
        while pending:
            frame = json.loads(await w.ws.recv())
            if frame["type"] not in ("ack", "error"):
                continue
            if frame.get("clientId") not in pending:
                continue
            pending.discard(frame["clientId"])
            if frame["type"] == "ack":
                acked += 1
            else:
                assert frame["code"] == "rate-limited", frame
                limited += 1
    return acked, limited


@contextlib.asynccontextmanager
async def sockets(chat: Webchat, count: int, **hello: Any) -> AsyncIterator[list[Widget]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(widget(chat, **hello)) for _ in range(count)]


async def test_ten_sockets_of_one_visitor_share_one_message_budget(webchat: Webchat) -> None:
    visitor = secrets.token_hex(16)
    async with sockets(webchat, 10, visitorId=visitor) as widgets:
        results = await asyncio.gather(*(_send_many(w, 8) for w in widgets))
    acked = sum(a for a, _ in results)
    assert acked == 8, results  # the channel's budget: 8 messages per 10 s per visitor
    assert sum(limited for _, limited in results) == 72


async def test_visitors_behind_one_address_share_its_budget(
    tmp_path: Path, emulator: Emulator
) -> None:
    async with (
        custom_webchat(
            tmp_path, emulator, overrides={"widget_messages_per_address": "5/minute"}
        ) as chat,
        sockets(chat, 4) as widgets,
    ):  # four visitors, one address
        results = [await _send_many(w, 3) for w in widgets]
    assert sum(a for a, _ in results) == 5, results
    assert results[0] == (3, 0)


async def test_new_sockets_from_one_address_are_limited(tmp_path: Path, emulator: Emulator) -> None:
    """Every hello stores its visitor as a customer: past the address's budget a hello is
    refused (`rate-limited`, closed 4429) and stores nothing."""
    overrides = {"widget_hellos_per_address": "3/minute"}
    async with custom_webchat(tmp_path, emulator, overrides=overrides) as chat:
        for _ in range(3):
            async with widget(chat) as w:
                assert w.welcome["type"] == "welcome"
        async with widget(chat) as refused:
            assert (refused.welcome["type"], refused.welcome["code"]) == ("error", "rate-limited")
            with pytest.raises(ConnectionClosed) as closed:
                await refused.ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4429

        def customers() -> int:
            async def count() -> int:
                db = Database(chat.stack.settings.database_url)
                try:
                    return await db.run_read(lambda c: seed.count(c, t.customers))
                finally:
                    await db.close()

            return run_async(count())

        assert await asyncio.to_thread(customers) == 3


async def test_typing_reaches_cxone_at_most_once_per_interval(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()  # the whole burst falls inside one interval, however slow the machine
    interval_ms = int(Settings.model_fields["widget_typing_interval_seconds"].default * 1000)
    visitor = secrets.token_hex(16)
    async with (
        custom_webchat(tmp_path, emulator, clock=clock) as chat,
        sockets(chat, 2, visitorId=visitor) as (first, second),
    ):
        thread = (await first.say("hello"))["message"]["threadId"]

        def in_cxone() -> bool:  # typing before CXone has the thread is shown to nobody
            return chat.stack.conversation(thread).de_contact_id is not None

        await asyncio.to_thread(wait_for, in_cxone, what="the thread in CXone")
        # A socket handles its frames in order: once it has answered a later message, it has
        # seen every typing frame before it.
        for index in range(19):  # typing, in 19 frames over two sockets
            await (first if index % 2 else second).send({"type": "typing", "typing": True})
        await first.say("one")
        await second.say("two")
        await first.send({"type": "typing", "typing": False})  # and then stopped
        await first.say("three")

        def typing_actions() -> list[str]:
            requests = chat.emulator.requests(path_contains="/sender-actions", method="POST")
            return [str((r.get("requestBody") or {}).get("action")) for r in requests]

        def drained() -> bool:
            return not chat.stack.outbox()

        await asyncio.to_thread(wait_for, drained, what="the outbox to drain")
        assert typing_actions() == ["isTypingOn"]
        # The state the customer is in now follows when the interval ends, and only then.
        clock.advance(interval_ms)
        await asyncio.to_thread(
            wait_for, lambda: "isTypingOff" in typing_actions(), what="typing off to reach CXone"
        )
        clock.advance(interval_ms)  # nothing more is due at the end of the next one
        await asyncio.to_thread(wait_for, drained, what="the outbox to drain")
        assert typing_actions() == ["isTypingOn", "isTypingOff"]


def _upload_url(chat: Webchat) -> str:
    return f"{chat.url}/webchat/v1/channels/{chat.channel_id}/attachments"


async def _upload(
    http: httpx.AsyncClient, chat: Webchat, visitor: str, data: bytes, origin: str | None = None
) -> httpx.Response:
    headers = {"X-Byoc-Visitor": visitor}
    if origin is not None:
        headers["Origin"] = origin
    return await http.post(
        _upload_url(chat), files={"file": ("note.txt", data, "text/plain")}, headers=headers
    )


async def test_anonymous_uploads_need_an_allowed_origin(webchat: Webchat) -> None:
    async with loopback.async_client() as http:
        missing = await _upload(http, webchat, secrets.token_hex(16), b"hello")
        assert missing.status_code == 403
        assert missing.json()["type"] == "urn:byoc:problem:forbidden-origin"
        ok = await _upload(http, webchat, secrets.token_hex(16), b"hello", webchat.page_origin)
        assert ok.status_code == 201, ok.text


async def test_uploads_are_limited_per_visitor_and_per_address(
    tmp_path: Path, emulator: Emulator
) -> None:
    overrides = {"widget_uploads_per_visitor": "2/minute", "widget_uploads_per_address": "3/minute"}
    async with (
        custom_webchat(tmp_path, emulator, overrides=overrides) as chat,
        loopback.async_client() as http,
    ):
        alice, bob = secrets.token_hex(16), secrets.token_hex(16)
        statuses = [
            (await _upload(http, chat, alice, b"a", chat.page_origin)).status_code for _ in range(3)
        ]
        assert statuses == [201, 201, 429]
        assert (await _upload(http, chat, bob, b"b", chat.page_origin)).status_code == 201
        refused = await _upload(http, chat, bob, b"b", chat.page_origin)
        assert refused.status_code == 429
        assert refused.json()["type"] == "urn:byoc:problem:rate-limited"
        assert int(refused.headers["retry-after"]) >= 1


async def test_anonymous_uploads_count_against_storage_quotas(
    tmp_path: Path, emulator: Emulator
) -> None:
    overrides = {
        "widget_upload_quota_visitor_bytes": 1000,
        "widget_upload_quota_address_bytes": 1500,
        "widget_upload_quota_channel_bytes": 100_000,
    }
    async with (
        custom_webchat(tmp_path, emulator, overrides=overrides) as chat,
        loopback.async_client() as http,
    ):
        alice, bob = secrets.token_hex(16), secrets.token_hex(16)
        chunk = b"x" * 600
        assert (await _upload(http, chat, alice, chunk, chat.page_origin)).status_code == 201
        over_visitor = await _upload(http, chat, alice, chunk, chat.page_origin)
        assert over_visitor.status_code == 429
        assert over_visitor.json()["type"] == "urn:byoc:problem:upload-quota-exceeded"
        assert "this visitor" in over_visitor.json()["detail"]
        assert (await _upload(http, chat, bob, chunk, chat.page_origin)).status_code == 201
        over_address = await _upload(http, chat, secrets.token_hex(16), chunk, chat.page_origin)
        assert over_address.status_code == 429
        assert "this address" in over_address.json()["detail"]


def _from_address(address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (anywhere in 127.0.0.0/8)."""
    return loopback.async_client(transport=httpx.AsyncHTTPTransport(local_address=address))


async def test_visitors_from_several_addresses_share_the_channel_quota(
    tmp_path: Path, emulator: Emulator
) -> None:
    window = 600
    overrides = {
        "widget_upload_quota_window_seconds": window,
        "widget_upload_quota_visitor_bytes": 1000,
        "widget_upload_quota_address_bytes": 1000,
        "widget_upload_quota_channel_bytes": 1500,
    }
    chunk = b"x" * 600
    async with (
        custom_webchat(tmp_path, emulator, overrides=overrides) as chat,
        _from_address("127.0.0.2") as first,
        _from_address("127.0.0.3") as second,
        _from_address("127.0.0.4") as third,
    ):
        # Each visitor and each address stays inside its own quota; together they spend the
        # channel's.
        alice, bob, carol = (secrets.token_hex(16) for _ in range(3))
        assert (await _upload(first, chat, alice, chunk, chat.page_origin)).status_code == 201
        assert (await _upload(second, chat, bob, chunk, chat.page_origin)).status_code == 201
        refused = await _upload(third, chat, carol, chunk, chat.page_origin)
        problem = assert_problem(refused, 429, "upload-quota-exceeded")
        assert "this channel" in problem["detail"]
        assert int(refused.headers["retry-after"]) == window
        # Nothing of the refused file was kept: what is left of the channel's quota (300 of
        # 1500 bytes; none, had the 600 refused been counted) still takes a smaller one.
        small = await _upload(third, chat, carol, b"y" * 300, chat.page_origin)
        assert small.status_code == 201, small.text


GRACE, SWEEP_INTERVAL = 3600, 60.0


@contextlib.asynccontextmanager
async def _sweeping(
    tmp_path: Path, emulator: Emulator
) -> AsyncIterator[tuple[Webchat, httpx.AsyncClient, ManualClock]]:
    """A widget channel whose upload sweep runs every `SWEEP_INTERVAL` s with a grace period
    of `GRACE` s, on a clock the test moves; and an HTTP client."""
    overrides = {
        "widget_upload_grace_seconds": GRACE,
        "widget_upload_sweep_interval_seconds": SWEEP_INTERVAL,
    }
    clock = ManualClock()
    async with (
        custom_webchat(tmp_path, emulator, overrides=overrides, clock=clock) as chat,
        loopback.async_client() as http,
    ):
        yield chat, http, clock


async def test_uploads_no_message_carried_are_deleted_after_the_grace_period(
    tmp_path: Path, emulator: Emulator
) -> None:
    visitor = secrets.token_hex(16)
    async with _sweeping(tmp_path, emulator) as (chat, http, clock):
        kept = (await _upload(http, chat, visitor, b"sent", chat.page_origin)).json()
        orphan = (await _upload(http, chat, visitor, b"never sent", chat.page_origin)).json()
        async with widget(chat, visitorId=visitor) as w:
            await w.send(
                {"type": "message", "clientId": "c-1", "attachments": [{"id": kept["id"]}]}
            )
            await w.expect("ack", clientId="c-1")
        # A sweep pass inside the grace period keeps both.
        await asyncio.to_thread(advance, clock, int(SWEEP_INTERVAL * 1000))
        assert (await http.get(orphan["url"])).content == b"never sent"
        # The first pass after it deletes the one no message carried, and only that one.
        await asyncio.to_thread(advance, clock, GRACE * 1000)
        assert (await http.get(orphan["url"])).status_code == 404
        assert (await http.get(kept["url"])).content == b"sent"


async def test_an_upload_only_a_refused_message_named_is_still_swept(
    tmp_path: Path, emulator: Emulator
) -> None:
    """A message that names an upload and is refused (a postback without its label) leaves the
    upload unreferenced: the sweep deletes it after the grace period, as if never named."""
    visitor = secrets.token_hex(16)
    async with _sweeping(tmp_path, emulator) as (chat, http, clock):
        named = (await _upload(http, chat, visitor, b"free hosting?", chat.page_origin)).json()
        async with widget(chat, visitorId=visitor) as w:
            refused = {"type": "message", "clientId": "c-1", "postback": "drink=latte"}
            await w.send({**refused, "attachments": [{"id": named["id"]}]})
            assert (await w.expect("error", clientId="c-1"))["code"] == "invalid-input"
        await asyncio.to_thread(advance, clock, int(SWEEP_INTERVAL * 1000) + GRACE * 1000)
        assert (await http.get(named["url"])).status_code == 404


async def test_receipts_past_the_visitors_budget_are_dropped(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Each receipt is a write: past the visitor's budget one is dropped without a word, and
    the socket goes on."""
    overrides = {"widget_receipts_per_visitor": "2/minute"}
    async with (
        custom_webchat(tmp_path, emulator, overrides=overrides) as chat,
        widget(chat) as w,
    ):
        thread = (await w.say("hello"))["message"]["threadId"]
        seen = []
        for n in range(3):
            await asyncio.to_thread(agent_reply, chat, thread, f"answer {n}")
            shown = await w.expect("message", message__text=f"answer {n}")
            seen.append(shown["message"]["id"])
        for message_id in seen:
            await w.send({"type": "seen", "messageId": message_id})
        await w.say("still here")  # after the three receipts, on the same socket

        def statuses() -> list[str]:
            async def read() -> list[str]:
                db = Database(chat.stack.settings.database_url)
                try:
                    found = [await db.run_read(messages.get_message, m) for m in seen]
                    return [m.status if m else "gone" for m in found]
                finally:
                    await db.close()

            return run_async(read())

        assert await asyncio.to_thread(statuses) == ["seen", "seen", "sent"]
