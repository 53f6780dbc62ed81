"""End to end over loopback: platform ⇄ middleware ⇄ CXone emulator."""

from __future__ import annotations

from pathlib import Path

from tests.byoc.harness import Stack, running_stack, wait_for
from tests.emulator_harness import Emulator


def test_customer_message_reaches_cxone_with_every_required_field(stack: Stack) -> None:
    accepted = stack.customer_says("Hello from the Watering Hole")
    assert accepted["status"] == "queued"
    contact = stack.contact_for_thread(accepted["threadId"])
    creates = wait_for(
        lambda: stack.emulator.requests(path_contains="/messages", method="POST"),
        what="create-message call",
    )
    body = creates[-1]["requestBody"]
    assert creates[-1]["status"] == 200
    assert body["idOnExternalPlatform"] == accepted["id"]
    assert body["direction"] == "inbound"
    assert body["thread"]["idOnExternalPlatform"] == accepted["threadId"]
    assert body["messageContent"] == {
        "type": "TEXT",
        "payload": {"text": "Hello from the Watering Hole"},
    }
    assert body["authorEndUserIdentity"]["idOnExternalPlatform"] == accepted["customerId"]
    assert body["authorEndUserIdentity"]["firstName"] == "Ada"
    assert body["createdAtWithMilliseconds"].endswith("Z")
    assert contact["status"] == "new"


def test_agent_reply_reaches_platform_after_token_dance(stack: Stack) -> None:
    accepted = stack.customer_says("I need help")
    contact = stack.contact_for_thread(accepted["threadId"])
    reply = stack.agent_replies(contact["id"], "Hi Ada, how can I help?")
    assert reply.status_code == 200, reply.text
    platform_id = reply.json()["message"]["idOnExternalPlatform"]
    assert platform_id.startswith("msg_")

    calls = stack.emulator.callbacks()
    statuses = [(c["url"].rsplit("/box", 1)[-1], c["status"]) for c in calls]
    assert statuses[0] == (f"/2.0/channel/{stack.channel_id}/outbound", 401)
    assert statuses[1] == ("/1.0/token", 200)
    assert statuses[2] == (f"/2.0/channel/{stack.channel_id}/outbound", 200)

    event = wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")[0]
    assert event["message"]["text"] == "Hi Ada, how can I help?"
    assert event["message"]["id"] == platform_id
    assert event["threadId"] == accepted["threadId"]
    assert event["customer"]["externalId"] == "wh-user-1"


def test_legacy_reply_style(tmp_path: Path, emulator: Emulator) -> None:
    with running_stack(tmp_path, emulator, reply_style="legacy") as stack:
        accepted = stack.customer_says("legacy please")
        contact = stack.contact_for_thread(accepted["threadId"])
        reply = stack.agent_replies(contact["id"], "legacy answer")
        assert reply.status_code == 200, reply.text
        urls = [c["url"] for c in stack.emulator.callbacks() if c["status"] == 200]
        assert any("/1.0/posts/" in u and u.endswith("/messages") for u in urls)
        event = wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")[0]
        assert event["message"]["text"] == "legacy answer"
        assert event["message"]["id"] == reply.json()["message"]["idOnExternalPlatform"]
