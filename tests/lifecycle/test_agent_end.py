"""An agent ends the conversation in CXone (contract §4.5): the middleware learns it from DE.

The middleware runs on a `ManualClock` where a test is about the poll, and the test moves it
forward by poll intervals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import Connection, update

from byoc.clock import ManualClock
from byoc.conversations.lifecycle import END_CHECK_PAUSE_ROUNDS
from byoc.settings import Settings
from byoc.store import Database, channels, conversations, tenants
from byoc.store import schema as t
from byoc.tenancy import default_tenant
from tests.support import loopback, seed
from tests.support.emulator import Emulator
from tests.support.stack import Stack, box_token, running_stack
from tests.support.waiting import advance, run_async, wait_for
from tests.support.widget import agent_reply, custom_webchat, widget

POLL_MS = int(Settings.model_fields["end_poll_interval_seconds"].default * 1000)
NO_IDLE: dict[str, Any] = {"idle_timeout_seconds": 0}
T = TypeVar("T")


async def test_widget_learns_the_end_within_the_poll_interval(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    async with (
        custom_webchat(tmp_path, emulator, overrides=NO_IDLE, clock=clock) as chat,
        widget(chat) as w,
    ):
        first = (await w.say("hello"))["message"]
        await w.expect("status", messageId=first["id"], status="sent")
        await asyncio.to_thread(agent_reply, chat, first["threadId"], "Goodbye, have a nice day!")
        contact = chat.contact_for_thread(first["threadId"])
        chat.emulator.admin.post(f"/emulator/contacts/{contact['id']}/close")
        await asyncio.to_thread(advance, clock, POLL_MS)  # the next poll
        ended = await w.expect("ended")
        assert ended["threadId"] == first["threadId"]
        assert ended["reason"] == "agent"

        await w.send({"type": "message", "clientId": "c-late", "text": "wait, one more thing"})
        assert (await w.expect("error", clientId="c-late"))["code"] == "conversation-ended"
        detail = chat.emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
        assert all(
            m["messageContent"]["payload"].get("text") != "wait, one more thing"
            for m in detail["messages"]
        )

        await w.send({"type": "new_conversation"})
        assert (await w.expect("welcome"))["conversation"] is None
        fresh = (await w.say("a new question"))["message"]
        assert fresh["threadId"] != first["threadId"]
        new_contact = await asyncio.to_thread(chat.contact_for_thread, fresh["threadId"])
        assert new_contact["id"] != contact["id"]


def test_message_after_an_unnoticed_end_is_checked_before_forwarding(
    tmp_path: Path, emulator: Emulator
) -> None:
    slow_poll: dict[str, Any] = {
        "end_poll_interval_seconds": 600,
        "end_check_min_interval_seconds": 0,
        "idle_timeout_seconds": 0,
    }
    with running_stack(tmp_path, emulator, **slow_poll) as stack:
        first = stack.customer_says("hello")
        contact = stack.contact_for_thread(first["threadId"])
        stack.emulator.admin.post(f"/emulator/contacts/{contact['id']}/close")
        late = stack.customer_says("are you there?", threadId=first["threadId"])
        assert late["status"] == "queued"  # accepted: nobody here knew yet
        ended = wait_for(lambda: stack.platform.of_type("conversation.ended"), what="ended event")
        assert ended[0]["reason"] == "agent"
        wait_for(lambda: not stack.outbox(), what="outbox drained")
        creates = stack.emulator.requests(path_contains="/messages", method="POST")
        assert [c["requestBody"]["idOnExternalPlatform"] for c in creates] == [first["id"]]
        transcript = stack.signed(
            "GET", f"/api/v1/channels/{stack.channel_id}/threads/{first['threadId']}/messages"
        ).json()
        assert transcript["state"] == "ended"
        assert transcript["messages"][-1]["status"] == "refused"
        # From now on the thread refuses at once.
        refused = stack.signed(
            "POST",
            f"/api/v1/channels/{stack.channel_id}/messages",
            {"customer": {"id": "wh-user-1"}, "text": "hello?", "threadId": first["threadId"]},
        )
        assert refused.status_code == 409


def test_final_agent_message_before_the_end_is_still_delivered(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, **NO_IDLE) as stack:
        first = stack.customer_says("thanks for your help")
        contact = stack.contact_for_thread(first["threadId"])
        stack.platform.fail_with = 503  # the platform hiccups while the agent says goodbye
        stack.agent_replies(contact["id"], "You're welcome, goodbye!")
        stack.emulator.admin.post(f"/emulator/contacts/{contact['id']}/close")
        advance(clock, POLL_MS)
        wait_for(
            lambda: (
                any(r["kind"] == "platform.ended" for r in stack.outbox())
                or stack.platform.of_type("conversation.ended")
            ),
            what="the end noticed",
        )
        stack.platform.fail_with = None
        backoff_ms = int(stack.settings.outbox_backoff_max_seconds * 1000)
        advance(clock, max(backoff_ms, POLL_MS))  # the failed delivery's retry is due
        events = wait_for(
            lambda: len(stack.platform.events) >= 2 and stack.platform.events, what="both events"
        )
        assert [e["type"] for e in events] == ["message.created", "conversation.ended"]
        assert events[0]["message"]["text"] == "You're welcome, goodbye!"


def test_end_poll_is_bounded(tmp_path: Path, emulator: Emulator) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, end_poll_batch_size=2, **NO_IDLE) as stack:
        for i in range(6):
            accepted = stack.customer_says("hi", customer=f"c{i}")
            stack.contact_for_thread(accepted["threadId"])
        wait_for(lambda: not stack.outbox(), what="the outbox drained")
        emulator.admin.delete("/emulator/requests")

        def contact_gets() -> int:
            return len(emulator.requests(path_contains="/contacts/", method="GET"))

        # Six open conversations, a batch of two: two look-ups per poll interval, never six.
        for rounds in range(1, 4):
            advance(clock, POLL_MS)
            wait_for(lambda: contact_gets() >= 2 * rounds, what=f"poll round {rounds}")  # noqa: B023
            assert contact_gets() == 2 * rounds


# --- the edges: a close racing a customer message, a thread closed in DE -----------------------

NO_POLL: dict[str, Any] = {"end_poll_interval_seconds": 600, "idle_timeout_seconds": 0}


def contacts_of_thread(stack: Stack, thread_id: str) -> list[dict[str, Any]]:
    response = stack.emulator.admin.get(
        "/emulator/contacts", params={"channelId": stack.channel_id}
    )
    data: list[dict[str, Any]] = response.json()["data"]
    return [c for c in data if c["threadIdOnExternalPlatform"] == thread_id]


def assert_ended_for_the_customer(stack: Stack, thread_id: str, refused_id: str) -> None:
    """The customer was told, the message that raced the end is refused, and the thread takes
    no more messages."""
    ended = wait_for(lambda: stack.platform.of_type("conversation.ended"), what="ended event")
    assert [e["reason"] for e in ended] == ["agent"]
    wait_for(lambda: not stack.outbox(), what="outbox drained")
    transcript = stack.signed(
        "GET", f"/api/v1/channels/{stack.channel_id}/threads/{thread_id}/messages"
    ).json()
    assert transcript["state"] == "ended"
    statuses = {m["id"]: m["status"] for m in transcript["messages"]}
    assert statuses[refused_id] == "refused"
    later = stack.signed(
        "POST",
        f"/api/v1/channels/{stack.channel_id}/messages",
        {"customer": {"id": "wh-user-1"}, "text": "hello?", "threadId": thread_id},
    )
    assert later.status_code == 409
    assert later.json()["type"].endswith("conversation-ended")


@pytest.mark.parametrize("check", ["asked just before", "skipped as fresh"])
def test_customer_message_racing_the_agents_close(
    tmp_path: Path, emulator: Emulator, check: str
) -> None:
    """The agent closes the contact between the pre-forward check and the create: DE takes the
    message on a new contact. That contact is closed at once and the conversation ends here."""
    interval = 0 if check == "asked just before" else 600
    with running_stack(
        tmp_path, emulator, end_check_min_interval_seconds=interval, **NO_POLL
    ) as stack:
        first = stack.customer_says("hello")
        thread_id = first["threadId"]
        contact = stack.contact_for_thread(thread_id)
        second = stack.customer_says("still there?", threadId=thread_id)
        wait_for(lambda: not stack.outbox(), what="both messages forwarded")
        assert len(contacts_of_thread(stack, thread_id)) == 1
        armed = emulator.admin.post(f"/emulator/contacts/{contact['id']}/close-on-next-message")
        assert armed.status_code == 200, armed.text
        emulator.admin.delete("/emulator/requests")

        late = stack.customer_says("one more thing", threadId=thread_id)
        assert_ended_for_the_customer(stack, thread_id, late["id"])
        calls = [(r["method"], r["path"].split("/dfo/3.0")[-1]) for r in emulator.requests()]
        create = ("POST", f"/channels/{stack.channel_id}/messages")
        assert calls.count(create) == 1  # it reached CXone (after the check, if any)
        checks = [c for c in calls[: calls.index(create)] if c[0] == "GET"]
        assert bool(checks) == (check == "asked just before")
        both = contacts_of_thread(stack, thread_id)
        assert len(both) == 2
        assert both[0]["id"] == contact["id"]
        stray = both[1]
        assert [m["idOnExternalPlatform"] for m in stray["messages"]] == [late["id"]]
        assert [c["status"] for c in both] == ["closed", "closed"]  # no case left for an agent
        assert ("PUT", f"/contacts/{stray['id']}/status") in calls
        assert second["id"] != late["id"]


def test_stray_contact_is_closed_even_when_asking_about_the_previous_one_fails_once(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The retry must not trust a check of the previous contact alone: only the create's answer
    names the contact the message opened."""
    with running_stack(tmp_path, emulator, end_check_min_interval_seconds=0, **NO_POLL) as stack:
        first = stack.customer_says("hello")
        thread_id = first["threadId"]
        contact = stack.contact_for_thread(thread_id)
        wait_for(lambda: not stack.outbox(), what="first message forwarded")
        emulator.admin.post(f"/emulator/contacts/{contact['id']}/close-on-next-message")
        # The check before the create passes; the question after it fails once.
        rules = [
            {"match": "GET /contacts/*", "latencyMs": 1, "times": 1},
            {"match": "GET /contacts/*", "errorRate": 1.0, "errorStatus": 503, "times": 1},
        ]
        emulator.admin.put("/emulator/faults", json={"rules": rules}).raise_for_status()

        late = stack.customer_says("one more thing", threadId=thread_id)
        assert_ended_for_the_customer(stack, thread_id, late["id"])
        both = contacts_of_thread(stack, thread_id)
        assert [c["status"] for c in both] == ["closed", "closed"]
        asked = emulator.requests(path_contains=f"/contacts/{contact['id']}", method="GET")
        assert [r["status"] for r in asked] == [200, 503, 200]


def test_message_on_a_thread_closed_in_cxone_is_refused_before_forwarding(
    tmp_path: Path, emulator: Emulator
) -> None:
    with running_stack(tmp_path, emulator, end_check_min_interval_seconds=0, **NO_POLL) as stack:
        first = stack.customer_says("hello")
        thread_id = first["threadId"]
        contact = stack.contact_for_thread(thread_id)
        wait_for(lambda: not stack.outbox(), what="first message forwarded")
        with emulator.api_client() as api:
            closed = api.put(
                f"/channels/{stack.channel_id}/threads/{thread_id}",
                json={"canAddMoreMessages": False},
            )
            assert closed.status_code == 200, closed.text
        emulator.admin.delete("/emulator/requests")

        late = stack.customer_says("are you there?", threadId=thread_id)
        assert_ended_for_the_customer(stack, thread_id, late["id"])
        assert emulator.requests(path_contains="/messages", method="POST") == []
        assert [r["path"] for r in emulator.requests(path_contains="/threads", method="GET")]
        assert not stack.outbox(state="dead")
        assert contacts_of_thread(stack, thread_id)[0]["id"] == contact["id"]


def test_thread_closed_between_the_check_and_the_create_ends_the_conversation(
    tmp_path: Path, emulator: Emulator
) -> None:
    """DE refuses the message on the thread closed a moment ago: an end, not a dead letter."""
    with running_stack(tmp_path, emulator, end_check_min_interval_seconds=0, **NO_POLL) as stack:
        first = stack.customer_says("hello")
        thread_id = first["threadId"]
        contact = stack.contact_for_thread(thread_id)
        wait_for(lambda: not stack.outbox(), what="first message forwarded")
        emulator.admin.post(
            f"/emulator/contacts/{contact['id']}/close-on-next-message", json={"what": "thread"}
        )
        late = stack.customer_says("are you there?", threadId=thread_id)
        assert_ended_for_the_customer(stack, thread_id, late["id"])
        creates = emulator.requests(path_contains="/messages", method="POST")
        assert [c["status"] for c in creates][-1] == 400
        assert not stack.outbox(state="dead")


def test_background_poll_notices_a_thread_closed_in_cxone(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, **NO_IDLE) as stack:
        first = stack.customer_says("hello")
        thread_id = first["threadId"]
        stack.contact_for_thread(thread_id)
        wait_for(lambda: not stack.outbox(), what="first message forwarded")
        with emulator.api_client() as api:
            api.put(
                f"/channels/{stack.channel_id}/threads/{thread_id}",
                json={"canAddMoreMessages": False},
            ).raise_for_status()
        advance(clock, POLL_MS)  # the next poll
        ended = wait_for(lambda: stack.platform.of_type("conversation.ended"), what="ended")
        assert ended[0]["reason"] == "agent"
        assert ended[0]["threadId"] == thread_id


DEFAULT_CHECK_INTERVAL_MS = int(
    Settings.model_fields["end_check_min_interval_seconds"].default * 1000
)


def on_manual_clock(
    tmp_path: Path, emulator: Emulator, clock: ManualClock
) -> AbstractContextManager[Stack]:
    """The stack on `clock`, the end check at its default interval; no poll, no idle timer."""
    return running_stack(tmp_path, emulator, clock=clock, end_poll_interval_seconds=600, **NO_IDLE)


def test_the_check_before_forwarding_is_skipped_within_its_minimum_interval(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    interval_ms = DEFAULT_CHECK_INTERVAL_MS
    with on_manual_clock(tmp_path, emulator, clock) as stack:
        first = stack.customer_says("hello")
        contact = stack.contact_for_thread(first["threadId"])
        thread = first["threadId"]

        def checks() -> int:
            path = f"/contacts/{contact['id']}"
            return len([r for r in emulator.requests(method="GET") if r["path"].endswith(path)])

        def forwarded(text: str) -> None:
            stack.customer_says(text, threadId=thread)
            wait_for(lambda: not stack.outbox(), what=f"{text!r} forwarded")

        # The first message's create counts as a check: CXone took it on an open contact.
        forwarded("second")
        assert checks() == 0
        advance(clock, interval_ms)
        forwarded("third")  # the last answer is as old as the interval: CXone is asked
        assert checks() == 1
        forwarded("fourth")  # and that create answered again: fresh, not asked
        assert checks() == 1


def test_a_message_written_within_the_interval_is_forwarded_unasked_however_long_it_waited(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Freshness counts from the message's arrival, not its delivery: a backlog (here a slow
    receipt ahead of it in the conversation's lane) does not add the two calls of a check to
    every message, just when CXone or the middleware is slow already."""
    clock = ManualClock()
    interval_ms = DEFAULT_CHECK_INTERVAL_MS
    with on_manual_clock(tmp_path, emulator, clock) as stack:
        first = stack.customer_says("hello")
        thread = first["threadId"]
        contact = stack.contact_for_thread(thread)
        reply = stack.agent_replies(contact["id"], "hi")
        agent_message = reply.json()["message"]["idOnExternalPlatform"]
        wait_for(lambda: not stack.outbox(), what="the reply delivered and reported")
        slow = {"match": "PUT */status", "latencyMs": 1500, "times": 1}
        assert emulator.admin.put("/emulator/faults", json={"rules": [slow]}).status_code == 200
        emulator.admin.delete("/emulator/requests")

        seen = stack.signed(
            "POST",
            f"/api/v1/channels/{stack.channel_id}/receipts",
            {"messageId": agent_message, "status": "seen"},
        )
        assert seen.status_code == 202, seen.text
        stack.customer_says("second", threadId=thread)  # written as the last create answered
        advance(clock, 5 * interval_ms)  # delivered long after, behind the slow receipt
        wait_for(lambda: not stack.outbox(), what="'second' forwarded")

        calls = [(r["method"], r["path"].split("/dfo/3.0")[-1]) for r in emulator.requests()]
        assert [c[0] for c in calls] == ["PUT", "POST"]  # the receipt, the create: no end check


def test_agent_replies_and_typing_after_the_end_are_refused_and_reach_nobody(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Once the end is known here, an agent's reply (either callback style, with or without
    its recipients) or typing on the thread is answered 409 conversation-ended and nothing more
    reaches the platform; the retry of a reply stored before the end is still that reply."""
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, **NO_IDLE) as stack:
        thread_id = stack.customer_says("hello")["threadId"]
        contact = stack.contact_for_thread(thread_id)
        headers = {"Authorization": f"Bearer {box_token(stack)}"}
        box = f"{stack.url}/integration/box"
        dfo3 = f"{box}/2.0/channel/{stack.channel_id}/outbound"

        def reply(url: str, message_id: str, **extra: Any) -> httpx.Response:
            body = {
                "thread": {"idOnExternalPlatform": thread_id},
                "message": {"id": message_id},
                "messageContent": {"type": "TEXT", "payload": {"text": f"reply {message_id}"}},
                **extra,
            }
            return loopback.post(url, headers=headers, json=body)

        before = reply(dfo3, "de-before")
        assert before.status_code == 200, before.text
        wait_for(lambda: stack.platform.of_type("message.created"), what="the reply delivered")
        emulator.admin.post(f"/emulator/contacts/{contact['id']}/close")
        advance(clock, POLL_MS)  # the next poll
        wait_for(lambda: stack.platform.of_type("conversation.ended"), what="the end")
        told = len(stack.platform.events)

        typing = loopback.post(
            f"{box}/1.0/channel/{stack.channel_id}/thread/{thread_id}/sender-action",
            headers=headers,
            json={"senderAction": {"action": "isTypingOn"}},
        )
        for refused in (
            reply(dfo3, "de-after"),
            reply(f"{box}/1.0/posts/{thread_id}/messages", "de-after-legacy"),
            typing,
        ):
            assert refused.status_code == 409, refused.text
            assert refused.json()["type"] == "urn:byoc:problem:conversation-ended"
        again = reply(dfo3, "de-before")
        assert again.status_code == 200, again.text
        assert again.json()["message"] == before.json()["message"]

        # As CXone sends a reply: with its recipients and DE's thread id. Still the thread's.
        customer_id = stack.conversation(thread_id).customer_id
        recipients = [{"idOnExternalPlatform": customer_id, "isPrimary": True}]
        de_thread = {"idOnExternalPlatform": thread_id, "id": "de-thread-1"}
        shaped = reply(dfo3, "de-shaped", endUserRecipients=recipients, thread=de_thread)
        assert shaped.status_code == 409, shaped.text
        wait_for(lambda: not stack.outbox(), what="the outbox drained")
        assert stack.platform.events[told:] == []


# --- the poll's own edges: a conversation CXone cannot be asked about, a deleted channel -------


def _contact_gets(emulator: Emulator) -> int:
    return len(emulator.requests(path_contains="/contacts/", method="GET"))


def _poll_rounds(stack: Stack, clock: ManualClock, rounds: int) -> None:
    """Move the clock by `rounds` poll intervals, each time until the round asked DE."""
    for done in range(1, rounds + 1):
        asked = _contact_gets(stack.emulator)
        advance(clock, POLL_MS)
        wait_for(lambda: _contact_gets(stack.emulator) > asked, what=f"poll round {done}")  # noqa: B023


def test_a_conversation_cxone_cannot_be_asked_about_holds_up_no_other(
    tmp_path: Path, emulator: Emulator
) -> None:
    """One conversation at a time is polled; DE answers 404 for the first one's contact. The
    poll goes on to the next, whose close it notices, and asks about the first again after
    its pause."""
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, end_poll_batch_size=1, **NO_IDLE) as stack:
        unknown = stack.customer_says("hi", customer="c-unknown")["threadId"]
        closed = stack.customer_says("hi", customer="c-closed")["threadId"]
        unknown_contact = stack.contact_for_thread(unknown)["id"]
        closed_contact = stack.contact_for_thread(closed)["id"]
        wait_for(lambda: not stack.outbox(), what="both messages forwarded")
        run_async(_on_store(stack, lambda conn: _checked_in_order(conn, unknown, closed)))
        rule = {"match": f"GET /contacts/{unknown_contact}", "errorRate": 1, "errorStatus": 404}
        emulator.admin.put("/emulator/faults", json={"rules": [rule]}).raise_for_status()
        emulator.admin.post(f"/emulator/contacts/{closed_contact}/close")

        _poll_rounds(stack, clock, 2)  # the unknown one, refused; then the closed one
        wait_for(lambda: stack.conversation(closed).state == "ended", what="the close noticed")
        assert stack.conversation(unknown).state == "open"

        emulator.admin.delete("/emulator/faults").raise_for_status()
        emulator.admin.post(f"/emulator/contacts/{unknown_contact}/close")
        advance(clock, END_CHECK_PAUSE_ROUNDS * POLL_MS)  # its pause is over
        wait_for(lambda: stack.conversation(unknown).state == "ended", what="asked again")


def test_conversations_of_a_deleted_channel_are_retired_without_a_word(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Open conversations of a channel deleted since: the poll and the idle timers end them here
    ("channel-deleted") and send nothing anywhere, and the poll goes on to the live one."""
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, end_poll_batch_size=1, **NO_IDLE) as stack:

        def orphans(conn: Connection) -> tuple[str, str]:
            gone = seed.add_channel(conn, "ch-gone")
            ids = []
            # One the poll asks about (CXone knows it), one whose idle deadline is due.
            for name, contact, idle_deadline in (("polled", "c-1", None), ("timed", None, 1)):
                conversation = seed.add_conversation(
                    conn, seed.add_customer(conn, gone, name), created_at=1, ended_at=None,
                    texts=["hi"],
                ).conversation  # fmt: skip
                conversations.update_conversation(
                    conn, conversation.id, de_contact_id=contact, idle_deadline=idle_deadline
                )
                ids.append(conversation.id)
            channels.delete_channel(conn, gone.id)
            return ids[0], ids[1]

        polled, timed = run_async(_on_store(stack, orphans))
        live = stack.customer_says("hi")["threadId"]
        stack.emulator.admin.post(
            f"/emulator/contacts/{stack.contact_for_thread(live)['id']}/close"
        )
        wait_for(lambda: not stack.outbox(), what="the message forwarded")
        run_async(_on_store(stack, lambda conn: _checked_in_order(conn, polled, live)))

        advance(clock, POLL_MS)  # the orphan polled, and retired
        wait_for(lambda: not stack.conversation(polled).is_open, what="the orphan retired")
        _poll_rounds(stack, clock, 1)  # then the live one
        wait_for(lambda: stack.conversation(live).state == "ended", what="the close noticed")
        for orphan in (polled, timed):
            retired = stack.conversation(orphan)
            assert (retired.state, retired.ended_reason) == ("ended", "channel-deleted")
        wait_for(lambda: not stack.outbox(), what="the outbox drained")
        told = {e["threadId"] for e in stack.platform.events}
        asked = str(emulator.requests())
        for orphan in (polled, timed):
            assert orphan not in told
            assert orphan not in asked


def _checked_in_order(conn: Connection, *thread_ids: str) -> None:
    """The poll takes the least recently checked first: these, in this order."""
    for at, thread_id in enumerate(thread_ids, start=1):
        conversations.update_conversation(conn, thread_id, de_checked_at=at)


async def _on_store(stack: Stack, work: Callable[[Connection], T]) -> T:
    db = Database(stack.settings.database_url)
    try:
        return await db.run_write(work)
    finally:
        await db.close()


def test_a_tenant_whose_cxone_is_unavailable_holds_up_no_other(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Five conversations of a tenant whose CXone cannot be reached come first; one is asked,
    its channel then rests, and the next round asks about the live tenant's, noticing its close."""
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, end_poll_batch_size=1, **NO_IDLE) as stack:
        live = stack.customer_says("hi")["threadId"]
        contact = stack.contact_for_thread(live)["id"]
        wait_for(lambda: not stack.outbox(), what="the message forwarded")

        def unreachable_tenant(conn: Connection) -> None:
            gone = "http://127.0.0.1:9"  # nothing listens: connection refused
            down = replace(
                default_tenant(stack.settings),
                id="down",
                api_url=gone + "/dfo/3.0",
                token_url=gone + "/auth/token",
            )
            tenants.upsert_tenant(conn, down)
            channel = seed.add_channel(conn, "ch-down")
            conn.execute(
                update(t.channels).where(t.channels.c.id == channel.id).values(tenant_id="down")
            )
            for n in range(5):
                conversation = seed.add_conversation(
                    conn, seed.add_customer(conn, channel, f"d{n}"), created_at=1, ended_at=None,
                    texts=["hi"],
                ).conversation  # fmt: skip
                conversations.update_conversation(
                    conn, conversation.id, de_contact_id=f"c-{n}", de_checked_at=1
                )
            conversations.update_conversation(conn, live, de_checked_at=2)

        run_async(_on_store(stack, unreachable_tenant))
        emulator.admin.post(f"/emulator/contacts/{contact}/close")
        advance(clock, POLL_MS)  # one of the unreachable tenant's: its channel rests
        advance(clock, POLL_MS)  # the live one
        wait_for(lambda: stack.conversation(live).state == "ended", what="the close noticed")


def test_the_retry_of_a_reply_stored_before_the_end_takes_no_sequence_number(
    tmp_path: Path, emulator: Emulator
) -> None:
    """With the idle clock on, a reply's transaction reserves its number as it first reads the
    conversation. After the end, the retry of a reply stored before it is answered as that
    reply, and the number reserved on the way is not kept: no gap in the thread's numbers."""
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, idle_timeout_seconds=3600) as stack:
        thread_id = stack.customer_says("hello")["threadId"]
        contact = stack.contact_for_thread(thread_id)
        headers = {"Authorization": f"Bearer {box_token(stack)}"}
        body = {
            "thread": {"idOnExternalPlatform": thread_id},
            "message": {"id": "de-kept"},
            "messageContent": {"type": "TEXT", "payload": {"text": "kept"}},
        }
        dfo3 = f"{stack.url}/integration/box/2.0/channel/{stack.channel_id}/outbound"
        before = loopback.post(dfo3, headers=headers, json=body)
        assert before.status_code == 200, before.text
        emulator.admin.post(f"/emulator/contacts/{contact['id']}/close")
        advance(clock, POLL_MS)
        wait_for(lambda: stack.platform.of_type("conversation.ended"), what="the end")
        numbered = stack.conversation(thread_id).next_seq

        again = loopback.post(dfo3, headers=headers, json=body)
        assert again.status_code == 200, again.text
        assert again.json()["message"] == before.json()["message"]
        refused = loopback.post(dfo3, headers=headers, json={**body, "message": {"id": "de-new"}})
        assert refused.status_code == 409, refused.text
        assert stack.conversation(thread_id).next_seq == numbered
