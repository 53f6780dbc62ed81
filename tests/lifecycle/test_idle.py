"""The idle customer (contract §4.4): warning, countdown, cancellation, the end in CXone,
restarts and no double firing. The middleware runs on a `ManualClock` with the default
timeouts (2 minutes, then a 20-second countdown), and the tests move it forward."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from byoc.clock import ManualClock
from byoc.settings import Settings
from tests.support.emulator import Emulator
from tests.support.servers import ThreadedServer
from tests.support.stack import Stack, running_stack
from tests.support.waiting import advance, wait_for
from tests.support.widget import Widget, agent_reply, custom_webchat, widget

DEFAULTS = Settings.model_fields
IDLE_MS = int(DEFAULTS["idle_timeout_seconds"].default * 1000)
COUNTDOWN_MS = int(DEFAULTS["idle_countdown_seconds"].default * 1000)
# Deadlines are found by a poll: one fires at the first poll at or after it.
POLL_MS = int(DEFAULTS["timer_poll_interval_seconds"].default * 1000)


def contact_status_puts(emulator: Emulator) -> list[dict[str, Any]]:
    return [
        r
        for r in emulator.requests(path_contains="/contacts/", method="PUT")
        if r["path"].endswith("/status")
    ]


async def _agent_waits_for_customer(w: Widget, chat: Any) -> dict[str, Any]:
    message: dict[str, Any] = (await w.say("I have a question"))["message"]
    await asyncio.to_thread(agent_reply, chat, message["threadId"], "Sure, what is it?")
    await w.expect("message", message__text="Sure, what is it?")
    return message


async def test_warning_countdown_and_end_in_cxone(tmp_path: Path, emulator: Emulator) -> None:
    clock = ManualClock()
    async with (
        custom_webchat(tmp_path, emulator, clock=clock) as chat,
        widget(chat) as w,
    ):
        message = await _agent_waits_for_customer(w, chat)
        thread = message["threadId"]
        await asyncio.to_thread(advance, clock, IDLE_MS - POLL_MS)
        before = await asyncio.to_thread(chat.stack.conversation, thread)
        assert before.idle_deadline == clock.now_ms() + POLL_MS  # not due yet: nothing fired
        assert before.countdown_deadline is None
        await asyncio.to_thread(advance, clock, POLL_MS)
        warning = await w.expect("message", message__sender="system")
        assert "Are you still there?" in warning["message"]["text"]
        idle = await w.expect("idle_warning")
        assert idle["deadline"] == clock.now_ms() + COUNTDOWN_MS
        await asyncio.to_thread(advance, clock, COUNTDOWN_MS - POLL_MS)
        assert (await asyncio.to_thread(chat.stack.conversation, thread)).state == "open"
        await asyncio.to_thread(advance, clock, POLL_MS)
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
    """A message answers the agent: the customer owes nothing. A keystroke or "still here"
    does not: the idle clock starts again, and two minutes later the customer is asked again."""
    clock = ManualClock()
    async with custom_webchat(tmp_path, emulator, clock=clock) as chat, widget(chat) as w:
        thread = (await _agent_waits_for_customer(w, chat))["threadId"]
        await asyncio.to_thread(advance, clock, IDLE_MS)
        await w.expect("idle_warning")
        if activity == "message":
            await w.say("yes, still here")
        elif activity == "typing":
            await w.send({"type": "typing", "typing": True})
        else:
            await w.send({"type": "still_here"})
        await w.expect("idle_cleared")
        active_at = clock.now_ms()
        # Past the countdown: nothing ends.
        await asyncio.to_thread(advance, clock, COUNTDOWN_MS + POLL_MS)
        after = await asyncio.to_thread(chat.stack.conversation, thread)
        if activity == "message":
            assert (after.state, after.idle_deadline, after.countdown_deadline) == (
                "open",
                None,
                None,
            )
        else:
            assert (after.state, after.idle_deadline) == ("open", active_at + IDLE_MS)
            await asyncio.to_thread(advance, clock, IDLE_MS)
            await w.expect("idle_warning")
    assert contact_status_puts(emulator) == []


async def test_idle_disabled_with_zero(tmp_path: Path, emulator: Emulator) -> None:
    clock = ManualClock()
    async with (
        custom_webchat(tmp_path, emulator, clock=clock, idle_timeout_seconds=0) as chat,
        widget(chat) as w,
    ):
        thread = (await _agent_waits_for_customer(w, chat))["threadId"]
        await asyncio.to_thread(advance, clock, 24 * 3600 * 1000)
        after = await asyncio.to_thread(chat.stack.conversation, thread)
        assert (after.state, after.idle_deadline, after.countdown_deadline) == ("open", None, None)


def _agent_replied(stack: Stack, customer: str = "wh-user-1") -> str:
    accepted = stack.customer_says("hello", customer=customer)
    contact = stack.contact_for_thread(accepted["threadId"])
    assert stack.agent_replies(contact["id"], "anything else?").status_code == 200
    return str(accepted["threadId"])


def test_restart_in_the_middle_of_the_countdown_fires_once(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock) as stack:
        thread = _agent_replied(stack)
        advance(clock, IDLE_MS)
        wait_for(lambda: stack.platform.of_type("conversation.idle_warning"), what="warning")
        stack.stop()
        clock.advance(COUNTDOWN_MS)  # the countdown runs out while no instance is up
        assert stack.platform.of_type("conversation.ended") == []
        stack.start()
        ended = wait_for(lambda: stack.platform.of_type("conversation.ended"), what="the ending")
        assert ended[0]["threadId"] == thread
        assert ended[0]["reason"] == "idle"
        wait_for(lambda: contact_status_puts(emulator), what="contact closed")
        wait_for(lambda: not stack.outbox(), what="the outbox drained")
        advance(clock, COUNTDOWN_MS + IDLE_MS)  # whatever could fire again has had its chance
        wait_for(lambda: not stack.outbox(), what="the outbox drained")
        assert len(stack.platform.of_type("conversation.ended")) == 1
        assert len(contact_status_puts(emulator)) == 1


def test_two_instances_fire_each_deadline_once(tmp_path: Path, emulator: Emulator) -> None:
    from byoc.app import create_app

    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock) as stack:
        second = ThreadedServer(create_app(stack.settings, clock=clock)).start()
        try:
            threads = [_agent_replied(stack, f"customer-{i}") for i in range(3)]
            advance(clock, IDLE_MS)
            wait_for(
                lambda: len(stack.platform.of_type("conversation.idle_warning")) >= 3,
                what="three warnings",
            )
            advance(clock, COUNTDOWN_MS)
            wait_for(
                lambda: len(stack.platform.of_type("conversation.ended")) >= 3,
                what="three endings",
            )
            wait_for(lambda: not stack.outbox(), what="the outbox drained")
            advance(clock, COUNTDOWN_MS + IDLE_MS)  # a second firing would have been due
            wait_for(lambda: not stack.outbox(), what="the outbox drained")
        finally:
            second.stop()
        ended = stack.platform.of_type("conversation.ended")
        assert sorted(e["threadId"] for e in ended) == sorted(threads)
        warnings = stack.platform.of_type("conversation.idle_warning")
        assert sorted(e["threadId"] for e in warnings) == sorted(threads)
        assert len(contact_status_puts(emulator)) == 3


async def test_an_idle_warning_after_an_unnoticed_close_closes_the_contact_it_opened(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The agent closes the contact; before the end poll comes round to the conversation, the
    idle warning goes to CXone, which opens a new contact on the thread for it. That contact is
    closed, and the conversation ends here as the agent's: nothing is left open in CXone."""
    clock = ManualClock()
    unpolled = {"end_poll_interval_seconds": 600}  # many open conversations: not reached yet
    async with (
        custom_webchat(tmp_path, emulator, overrides=unpolled, clock=clock) as chat,
        widget(chat) as w,
    ):
        thread = (await _agent_waits_for_customer(w, chat))["threadId"]
        contact = chat.contact_for_thread(thread)
        chat.emulator.admin.post(f"/emulator/contacts/{contact['id']}/close")
        await asyncio.to_thread(advance, clock, IDLE_MS)
        await w.expect("idle_warning")
        assert (await w.expect("ended"))["reason"] == "agent"

        def contacts() -> list[dict[str, Any]]:
            listed = emulator.admin.get("/emulator/contacts", params={"channelId": chat.channel_id})
            data: list[dict[str, Any]] = listed.json()["data"]
            return [c for c in data if c["threadIdOnExternalPlatform"] == thread]

        def all_closed() -> bool:
            found = contacts()
            return len(found) == 2 and all(c["status"] == "closed" for c in found)

        await asyncio.to_thread(wait_for, all_closed, what="the warning's contact closed")
        await asyncio.to_thread(wait_for, lambda: not chat.stack.outbox(), what="outbox drained")
        after = await asyncio.to_thread(chat.stack.conversation, thread)
        assert (after.state, after.ended_reason, after.countdown_deadline) == (
            "ended",
            "agent",
            None,
        )
