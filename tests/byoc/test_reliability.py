"""Outages, restarts and dead letters: nothing lost, nothing duplicated, order kept."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from byoc.clock import ManualClock
from tests.support.cli import run_cli
from tests.support.emulator import Emulator
from tests.support.stack import Stack, running_stack
from tests.support.waiting import advance, wait_for


def test_outage_during_a_burst_loses_nothing_and_keeps_order(stack: Stack) -> None:
    warm_up = stack.customer_says("before the outage", customer="dave")
    stack.contact_for_thread(warm_up["threadId"])  # the middleware holds a CXone token now
    faults = stack.emulator.admin.put("/emulator/faults", json={"outageSeconds": 1.5, "rules": []})
    assert faults.status_code == 200, faults.text
    sent: dict[str, list[str]] = defaultdict(list)
    for i in range(10):
        for customer in ("alice", "bob", "carol"):
            accepted = stack.customer_says(
                f"{customer} {i}", customer=customer, id=f"{customer}-{i}"
            )
            sent[accepted["threadId"]].append(accepted["id"])
    wait_for(lambda: not stack.outbox(), timeout=30, what="outbox to drain after the outage")

    creates = stack.emulator.requests(path_contains="/messages", method="POST")
    assert any(c["status"] == 503 for c in creates), "the outage did not bite"
    accepted_calls = [c["requestBody"] for c in creates[1:] if c["status"] == 200]
    delivered: dict[str, list[str]] = defaultdict(list)
    for body in accepted_calls:
        delivered[body["thread"]["idOnExternalPlatform"]].append(body["idOnExternalPlatform"])
    assert delivered == sent  # every message, once, in order per conversation
    for thread_id, ids in sent.items():
        contact = stack.contact_for_thread(thread_id)
        transcript = stack.emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
        assert [m["idOnExternalPlatform"] for m in transcript["messages"]] == ids


def test_rate_limit_retry_after_is_honoured(tmp_path: Path, emulator: Emulator) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock) as stack:
        emulator.admin.put(
            "/emulator/faults",
            json={
                "rules": [
                    {
                        "match": "POST /channels/*/messages",
                        "rateLimitRate": 1.0,
                        "retryAfterSeconds": 30,
                        "times": 1,
                    }
                ]
            },
        )

        def statuses() -> list[int]:
            creates = emulator.requests(path_contains="/messages", method="POST")
            return [c["status"] for c in creates]

        accepted = stack.customer_says("slow down")
        wait_for(lambda: [row["attempts"] for row in stack.outbox()] == [1], what="a retry")
        assert statuses() == [429]
        advance(clock, 29_000)
        assert statuses() == [429], "retried before the Retry-After of 30 s"
        advance(clock, 1_000)
        stack.contact_for_thread(accepted["threadId"])
        assert statuses() == [429, 200]


def test_restart_delivers_what_the_outbox_held(tmp_path: Path, emulator: Emulator) -> None:
    with running_stack(tmp_path, emulator) as stack:
        emulator.admin.put("/emulator/faults", json={"outageSeconds": 60, "rules": []})
        accepted = [stack.customer_says(f"before restart {i}", id=f"r-{i}") for i in range(5)]
        wait_for(
            lambda: any(r["status"] == 503 for r in emulator.requests()), what="a refused attempt"
        )
        stack.stop()
        assert len(stack.outbox(state="pending")) == 5
        emulator.admin.delete("/emulator/faults")
        stack.start()
        wait_for(lambda: not stack.outbox(), timeout=20, what="outbox to drain after restart")
        ok = [
            c["requestBody"]["idOnExternalPlatform"]
            for c in emulator.requests(path_contains="/messages", method="POST")
            if c["status"] == 200
        ]
        assert ok == [a["id"] for a in accepted]


def test_undeliverable_agent_message_is_reported_failed_to_cxone(
    tmp_path: Path, emulator: Emulator
) -> None:
    with running_stack(tmp_path, emulator, outbox_max_attempts=3) as stack:
        accepted = stack.customer_says("hello")
        contact = stack.contact_for_thread(accepted["threadId"])
        stack.platform.fail_with = 503
        reply = stack.agent_replies(contact["id"], "you will never see this")
        message_id = reply.json()["message"]["idOnExternalPlatform"]
        failed = wait_for(
            lambda: [
                r
                for r in emulator.requests(path_contains=f"/messages/{message_id}/status")
                if r["status"] == 200
            ],
            what="failed status",
        )
        assert failed[0]["requestBody"]["status"] == "failed"
        assert "503" in failed[0]["requestBody"]["reason"]
        dead = stack.outbox(state="dead")
        assert [row["kind"] for row in dead] == ["platform.message"]

        # The operator fixes the platform and re-drives the dead letter from the CLI.
        stack.platform.fail_with = None
        env = {**os.environ, "BYOC_DATABASE_URL": stack.settings.database_url}
        listed = run_cli(["outbox", "list", "--state", "dead", "--kind", "platform.message"], env)
        assert listed.returncode == 0, listed.stderr
        assert "platform.message" in listed.stdout
        retried = run_cli(["outbox", "retry", str(dead[0]["id"])], env)
        assert retried.returncode == 0, retried.stderr
        assert "re-queued 1" in retried.stdout
        event = wait_for(
            lambda: stack.platform.of_type("message.created"), what="re-driven webhook"
        )
        assert event[0]["message"]["id"] == message_id


def test_rejected_customer_message_is_dead_lettered_not_retried_forever(stack: Stack) -> None:
    stack.emulator.admin.put(
        "/emulator/faults",
        json={
            "rules": [
                {
                    "match": "POST /channels/*/messages",
                    "errorRate": 1.0,
                    "errorStatus": 400,
                    "times": 1,
                }
            ]
        },
    )
    accepted = stack.customer_says("refused")
    dead = wait_for(lambda: stack.outbox(state="dead"), what="dead letter")
    assert dead[0]["kind"] == "cxone.create_message"
    assert dead[0]["payload"]["message_id"] == accepted["id"]
    # The next message on the same conversation is not blocked by the dead one.
    later = stack.customer_says("accepted")
    stack.contact_for_thread(later["threadId"])


def conflict_once(stack: Stack, match: str) -> None:
    rule = {"match": match, "errorRate": 1.0, "errorStatus": 409, "times": 1}
    response = stack.emulator.admin.put("/emulator/faults", json={"rules": [rule]})
    assert response.status_code == 200, response.text


def test_conflict_from_cxone_is_dead_lettered_at_once_with_its_reason(stack: Stack) -> None:
    accepted = stack.customer_says("hello")
    contact = stack.contact_for_thread(accepted["threadId"])
    reply = stack.agent_replies(contact["id"], "hi")
    message_id = reply.json()["message"]["idOnExternalPlatform"]
    conflict_once(stack, "PUT /channels/*/messages/*/status")
    receipt = stack.signed(
        "POST",
        f"/api/v1/channels/{stack.channel_id}/receipts",
        {"messageId": message_id, "status": "delivered"},
    )
    assert receipt.status_code == 202, receipt.text
    dead = wait_for(lambda: stack.outbox(state="dead"), what="dead letter")
    assert [row["kind"] for row in dead] == ["cxone.message_status"]
    assert dead[0]["attempts"] == 1  # not retried: sending it again cannot help
    assert "409" in dead[0]["last_error"]
    assert "conflict" in dead[0]["last_error"]
    puts = stack.emulator.requests(path_contains=f"/messages/{message_id}/status", method="PUT")
    assert [p["status"] for p in puts] == [409]


def test_conflict_ending_a_contact_that_has_ended_is_success(
    tmp_path: Path, emulator: Emulator
) -> None:
    fast_idle: dict[str, Any] = {
        "idle_timeout_seconds": 0.5,
        "idle_countdown_seconds": 0.5,
        "timer_poll_interval_seconds": 0.1,
        "end_poll_interval_seconds": 600,
    }
    with running_stack(tmp_path, emulator, **fast_idle) as stack:
        accepted = stack.customer_says("hello")
        contact = stack.contact_for_thread(accepted["threadId"])
        conflict_once(stack, "PUT /contacts/*/status")
        stack.agent_replies(contact["id"], "anything else?")  # the customer owes a reply
        wait_for(lambda: stack.platform.of_type("conversation.ended"), what="idle end")
        wait_for(lambda: not stack.outbox(), what="outbox drained")
        puts = emulator.requests(path_contains=f"/contacts/{contact['id']}/status", method="PUT")
        assert [p["status"] for p in puts] == [409]  # "already ended" was taken at its word


def test_a_status_sent_before_cxone_knows_the_message_is_retried_not_lost(stack: Stack) -> None:
    accepted = stack.customer_says("hello")
    contact = stack.contact_for_thread(accepted["threadId"])
    reply = stack.agent_replies(contact["id"], "hi")
    message_id = reply.json()["message"]["idOnExternalPlatform"]
    # CXone has not recorded the message yet when the status arrives (it records our id from
    # our answer to its callback): the first status call finds no such message.
    rule = {
        "match": "PUT /channels/*/messages/*/status",
        "errorRate": 1.0,
        "errorStatus": 404,
        "times": 1,
    }
    assert stack.emulator.admin.put("/emulator/faults", json={"rules": [rule]}).status_code == 200
    receipt = stack.signed(
        "POST",
        f"/api/v1/channels/{stack.channel_id}/receipts",
        {"messageId": message_id, "status": "delivered"},
    )
    assert receipt.status_code == 202, receipt.text
    path = f"/messages/{message_id}/status"
    puts = wait_for(
        lambda: [
            p["status"]
            for p in stack.emulator.requests(path_contains=path, method="PUT")
            if p["status"] == 200
        ],
        what="the status delivered on a later attempt",
    )
    assert puts == [200]
    statuses = [p["status"] for p in stack.emulator.requests(path_contains=path, method="PUT")]
    assert statuses == [404, 200]
    assert stack.outbox(state="dead") == []
