"""The idle customer (contract §4.4) with short timeouts: warning, countdown, cancellation,
the end in CXone, restarts and no double firing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.byoc.harness import Stack, running_stack, wait_for
from tests.emulator_harness import Emulator
from tests.servers import ThreadedServer
from tests.webchat.client import Widget, agent_reply, custom_webchat, widget

FAST = {
    "idle_timeout_seconds": 1.0,
    "idle_countdown_seconds": 1.5,
    "timer_poll_interval_seconds": 0.1,
    "end_poll_interval_seconds": 30.0,
}


def contact_status_puts(emulator: Emulator) -> list[dict[str, Any]]:
    return [
        r
        for r in emulator.requests(path_contains="/contacts/", method="PUT")
        if r["path"].endswith("/status")
    ]


async def _agent_waits_for_customer(w: Widget, chat: Any) -> dict[str, Any]:
    message = (await w.say("I have a question"))["message"]
    await asyncio.to_thread(agent_reply, chat, message["threadId"], "Sure, what is it?")
    await w.expect("message", message__text="Sure, what is it?")
    return message


async def test_warning_countdown_and_end_in_cxone(tmp_path: Path, emulator: Emulator) -> None:
    async with custom_webchat(tmp_path, emulator, overrides=FAST) as chat, widget(chat) as w:
        started = time.monotonic()
        message = await _agent_waits_for_customer(w, chat)
        warning = await w.expect("message", message__sender="system")
        assert "Are you still there?" in warning["message"]["text"]
        idle = await w.expect("idle_warning")
        assert idle["deadline"] > time.time() * 1000
        assert time.monotonic() - started >= 1.0
        ended = await w.expect("ended")
        assert ended["threadId"] == message["threadId"]
        assert ended["reason"] == "idle"

    contact = chat.contact_for_thread(message["threadId"])
    puts = await asyncio.to_thread(
        wait_for, lambda: contact_status_puts(emulator), what="contact closed in CXone"
    )
    assert len(puts) == 1
    assert puts[0]["path"].endswith(f"/contacts/{contact['id']}/status")
    assert puts[0]["requestBody"] == {"status": "closed"}

    # The agent sees the warning and the ending in the transcript (sent through DE outbound).
    def system_texts() -> list[str]:
        return [
            r["requestBody"]["messageContent"]["payload"]["text"]
            for r in emulator.requests(path_contains="/outbound", method="POST")
            if r["status"] == 200
        ]

    await asyncio.to_thread(
        wait_for, lambda: len(system_texts()) == 2, what="both system messages in CXone"
    )
    outbound_texts = system_texts()
    assert "Are you still there?" in outbound_texts[0]
    assert "closed because we did not hear from you" in outbound_texts[1]


@pytest.mark.parametrize("activity", ["message", "typing", "still_here"])
async def test_any_customer_activity_cancels_the_countdown(
    tmp_path: Path, emulator: Emulator, activity: str
) -> None:
    overrides = {**FAST, "idle_countdown_seconds": 2.0}
    async with custom_webchat(tmp_path, emulator, overrides=overrides) as chat, widget(chat) as w:
        await _agent_waits_for_customer(w, chat)
        await w.expect("idle_warning")
        if activity == "message":
            await w.say("yes, still here")
        elif activity == "typing":
            await w.send({"type": "typing", "typing": True})
        else:
            await w.send({"type": "still_here"})
        await w.expect("idle_cleared")
        frames = await w.drain(2.5)
        assert not [f for f in frames if f["type"] == "ended"]
    assert contact_status_puts(emulator) == []


async def test_idle_disabled_with_zero(tmp_path: Path, emulator: Emulator) -> None:
    async with (
        custom_webchat(tmp_path, emulator, overrides=FAST, idle_timeout_seconds=0) as chat,
        widget(chat) as w,
    ):
        await _agent_waits_for_customer(w, chat)
        frames = await w.drain(2.0)
        assert [f["type"] for f in frames if f["type"] in ("idle_warning", "ended")] == []


def _agent_replied(stack: Stack, customer: str = "wh-user-1") -> str:
    accepted = stack.customer_says("hello", customer=customer)
    contact = stack.contact_for_thread(accepted["threadId"])
    assert stack.agent_replies(contact["id"], "anything else?").status_code == 200
    return str(accepted["threadId"])


def test_restart_in_the_middle_of_the_countdown_fires_once(
    tmp_path: Path, emulator: Emulator
) -> None:
    overrides = {**FAST, "idle_countdown_seconds": 2.0}
    with running_stack(tmp_path, emulator, **overrides) as stack:
        thread = _agent_replied(stack)
        wait_for(lambda: stack.platform.of_type("conversation.idle_warning"), what="warning")
        stack.stop()
        time.sleep(2.5)  # the countdown runs out while no instance is up
        assert stack.platform.of_type("conversation.ended") == []
        stack.start()
        ended = wait_for(lambda: stack.platform.of_type("conversation.ended"), what="the ending")
        assert ended[0]["threadId"] == thread
        assert ended[0]["reason"] == "idle"
        wait_for(lambda: contact_status_puts(emulator), what="contact closed")
        time.sleep(1.0)
        assert len(stack.platform.of_type("conversation.ended")) == 1
        assert len(contact_status_puts(emulator)) == 1


def test_two_instances_fire_each_deadline_once(tmp_path: Path, emulator: Emulator) -> None:
    from byoc.app import create_app

    with running_stack(tmp_path, emulator, **FAST) as stack:
        second = ThreadedServer(create_app(stack.settings)).start()
        try:
            threads = [_agent_replied(stack, f"customer-{i}") for i in range(3)]
            wait_for(
                lambda: len(stack.platform.of_type("conversation.ended")) >= 3,
                what="three endings",
            )
            time.sleep(1.0)
        finally:
            second.stop()
        ended = stack.platform.of_type("conversation.ended")
        assert sorted(e["threadId"] for e in ended) == sorted(threads)
        warnings = stack.platform.of_type("conversation.idle_warning")
        assert sorted(e["threadId"] for e in warnings) == sorted(threads)
        assert len(contact_status_puts(emulator)) == 3
