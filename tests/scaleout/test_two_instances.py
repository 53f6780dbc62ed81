"""Two middleware processes on PostgreSQL behind a client-side switch (issue: scale-out)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from byoc.app import create_app
from byoc.clock import ManualClock
from byoc.settings import Settings
from tests.support.cluster import Cluster, two_instances
from tests.support.emulator import Emulator
from tests.support.postgres import fresh_database
from tests.support.servers import ThreadedServer
from tests.support.waiting import advance, wait_for
from tests.support.widget import Widget, agent_reply, custom_webchat, widget, widget_at

pytestmark = pytest.mark.postgres


IDLE_MS = int(Settings.model_fields["idle_timeout_seconds"].default * 1000)
COUNTDOWN_MS = int(Settings.model_fields["idle_countdown_seconds"].default * 1000)


@asynccontextmanager
async def own_database() -> AsyncIterator[str]:
    manager = fresh_database()
    url = await asyncio.to_thread(manager.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def agent_says(cluster: Cluster, thread_id: str, text: str) -> None:
    contact = cluster.contact_for_thread(thread_id)
    response = cluster.emulator.admin.post(
        f"/emulator/contacts/{contact['id']}/reply", json={"text": text}
    )
    assert response.status_code == 200, response.text


async def _customer_starts(w: Widget) -> dict[str, Any]:
    message: dict[str, Any] = (await w.say("hello from the widget on A"))["message"]
    return message


async def test_widget_on_a_receives_a_reply_cxone_sent_to_b(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    with two_instances(tmp_path, emulator, postgres_url) as cluster:
        async with widget_at(cluster.a.url, cluster.channel_id, cluster.origin) as w:
            message = await _customer_starts(w)
            await asyncio.to_thread(agent_says, cluster, message["threadId"], "answered via B")
            frame = await w.expect("message", message__text="answered via B")
            assert frame["message"]["sender"] == "agent"
        callbacks = [c for c in emulator.callbacks() if c["url"].endswith("/outbound")]
        assert all(c["url"].startswith(cluster.b.url) for c in callbacks)


async def test_idle_countdown_fires_once_with_both_instances_up(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    # In-process instances (each its own engine, pool and LISTEN connection) on one
    # ManualClock, so the timeouts are the defaults and pass when the test says so. A database
    # of its own: moving the clock on would also fire the deadlines the module's other tests
    # left behind.
    clock = ManualClock()
    async with (
        own_database() as database_url,
        custom_webchat(
            tmp_path, emulator, overrides={"database_url": database_url}, clock=clock
        ) as chat,
        widget(chat) as w,
    ):
        second = await asyncio.to_thread(
            ThreadedServer(create_app(chat.stack.settings, clock=clock)).start
        )
        try:
            message = await _customer_starts(w)
            reply = await asyncio.to_thread(
                agent_reply, chat, message["threadId"], "anything else?"
            )
            assert reply["message"]["threadIdOnExternalPlatform"] == message["threadId"]
            await asyncio.to_thread(advance, clock, IDLE_MS)
            await w.expect("idle_warning")
            await asyncio.to_thread(advance, clock, COUNTDOWN_MS)
            await w.expect("ended")

            def drained() -> bool:  # the module's other tests share the database
                return not [r for r in chat.stack.outbox() if message["threadId"] in r["lane"]]

            await asyncio.to_thread(wait_for, drained, what="this conversation's rows delivered")
            # Both instances poll again, well past where a second firing would be due.
            await asyncio.to_thread(advance, clock, IDLE_MS + COUNTDOWN_MS)
            await asyncio.to_thread(wait_for, drained, what="this conversation's rows delivered")
        finally:
            await asyncio.to_thread(second.stop)
    puts = [
        r
        for r in emulator.requests(path_contains="/contacts/", method="PUT")
        if r["path"].endswith("/status")
    ]
    assert len(puts) == 1
    system = [
        r for r in emulator.requests(path_contains="/outbound", method="POST") if r["status"] == 200
    ]
    assert len(system) == 2  # one warning, one closing note


async def test_sigkill_mid_traffic_resumes_on_b_without_loss_or_duplicates(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    with two_instances(
        tmp_path, emulator, postgres_url, outbox_lease_seconds=2.0, idle_timeout_seconds=0
    ) as cluster:
        visitor = "ab" * 16
        sent: list[str] = [f"agent message {i}" for i in range(20)]
        seen: list[dict[str, Any]] = []

        async with widget_at(
            cluster.a.url, cluster.channel_id, cluster.origin, visitorId=visitor
        ) as w:
            thread = (await _customer_starts(w))["threadId"]
            cluster.contact_for_thread(thread)

            def agent_keeps_talking() -> None:
                for text in sent:
                    agent_says(cluster, thread, text)
                    time.sleep(0.05)

            talker = threading.Thread(target=agent_keeps_talking)
            talker.start()
            try:
                while len(seen) < 5:
                    frame = await w.expect("message", message__sender="agent")
                    seen.append(frame["message"])
                # A customer message is in flight when A dies: sent, never acknowledged.
                await w.send(
                    {"type": "message", "clientId": "c-inflight", "text": "did you get this?"}
                )
                cluster.a.kill()
            finally:
                await asyncio.to_thread(talker.join)

        last = seen[-1]
        async with widget_at(
            cluster.b.url,
            cluster.channel_id,
            cluster.origin,
            visitorId=visitor,
            threadId=thread,
            afterSeq=last["seq"],
        ) as w:
            seen.extend(m for m in w.welcome["messages"] if m["sender"] == "agent")
            customer_replayed = [m for m in w.welcome["messages"] if m["sender"] == "customer"]
            ack = await w.say("did you get this?", client_id="c-inflight")
            while len(seen) < len(sent):
                frame = await w.expect("message", message__sender="agent", timeout=15)
                seen.append(frame["message"])
        assert [m["text"] for m in seen] == sent
        assert len({m["id"] for m in seen}) == len(sent)
        if customer_replayed:  # A stored it before dying: the resend must not store it twice
            assert customer_replayed[0]["id"] == ack["message"]["id"]

        contact = cluster.contact_for_thread(thread)

        def inflight_in_cxone() -> list[dict[str, Any]]:
            detail = emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
            return [
                m
                for m in detail["messages"]
                if m["messageContent"]["payload"].get("text") == "did you get this?"
            ]

        inflight = await asyncio.to_thread(
            wait_for, inflight_in_cxone, timeout=15, what="the in-flight message in CXone"
        )
        assert len(inflight) == 1
