"""Rich messages end to end: emulator agent → box → webhook, and a customer's choice → DE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.emulator import Emulator
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_for


def _samples(stack: Stack) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, Any]] = stack.emulator.admin.get("/emulator/rich-samples").json()
    return samples


def _agent_sends(stack: Stack, contact_id: str, content: dict[str, Any]) -> dict[str, Any]:
    response = stack.emulator.admin.post(
        f"/emulator/contacts/{contact_id}/reply", json={"messageContent": content}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _delivered(stack: Stack, message_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for event in stack.platform.of_type("message.created"):
            if event["message"]["id"] == message_id:
                return event
        return None

    return wait_for(find, what=f"webhook for {message_id}")


def _open_contact(stack: Stack) -> dict[str, Any]:
    accepted = stack.customer_says("What's on tonight?")
    return stack.contact_for_thread(accepted["threadId"])


def test_each_rich_type_reaches_the_webhook_with_its_view_and_fallback(stack: Stack) -> None:
    contact = _open_contact(stack)
    samples = _samples(stack)
    events = {}
    for kind, content in samples.items():
        reply = _agent_sends(stack, contact["id"], content)
        events[kind] = _delivered(stack, reply["message"]["idOnExternalPlatform"])["message"]

    quick = events["QUICK_REPLIES"]
    assert quick["rich"] == {
        "version": 1,
        "type": "quick_replies",
        "text": "Which drink would you like?",
        "choices": [
            {"label": label, "postback": f"drink={label.lower()}", "description": None}
            | {"imageUrl": None}
            for label in ("Espresso", "Latte", "Tea")
        ],
    }
    assert quick["fallbackText"] == quick["text"] == samples["QUICK_REPLIES"]["fallbackText"]
    assert quick["content"]["type"] == "QUICK_REPLIES"

    picker = events["LIST_PICKER"]["rich"]
    assert picker["type"] == "list_picker"
    assert picker["title"] == "Pick a table"
    assert [c["postback"] for c in picker["choices"]] == [
        "table=window",
        "table=garden",
        "table=bar",
    ]
    assert picker["choices"][0]["description"] == "Two seats, street view"
    assert picker["choices"][0]["imageUrl"].endswith("/static/sample-espresso.svg")

    link = events["RICH_LINK"]["rich"]
    assert link["type"] == "rich_link"
    assert link["url"] == "https://example.com/menu"
    assert link["title"] == "Tonight's menu"

    card = events["ADAPTIVE_CARD"]["rich"]
    assert card["type"] == "adaptive_card"
    assert [b["type"] for b in card["body"]] == ["text", "image", "facts"]
    assert card["body"][2]["facts"][1] == {"title": "Ready at", "value": "18:30"}
    assert card["actions"] == [
        {"type": "postback", "label": "Confirm", "postback": "order=1042:confirm"},
        {"type": "link", "label": "Track it", "url": "https://example.com/o/1042"},
    ]
    # The Input.Text is not rendered: the card says so, and the fallback text is there to show.
    assert card["complete"] is False
    assert events["ADAPTIVE_CARD"]["fallbackText"] == samples["ADAPTIVE_CARD"]["fallbackText"]


def test_legacy_reply_carries_rich_content_too(tmp_path: Path, emulator: Emulator) -> None:
    with running_stack(tmp_path, emulator, reply_style="legacy") as stack:
        contact = _open_contact(stack)
        reply = _agent_sends(stack, contact["id"], _samples(stack)["LIST_PICKER"])
        urls = [c["url"] for c in stack.emulator.callbacks() if c["status"] == 200]
        assert any("/1.0/posts/" in u for u in urls)
        message = _delivered(stack, reply["message"]["idOnExternalPlatform"])["message"]
        assert message["rich"]["type"] == "list_picker"
        assert message["fallbackText"] == "Pick a table: Window, Garden or Bar"


def test_fallback_text_is_made_when_cxone_sends_none(stack: Stack) -> None:
    contact = _open_contact(stack)
    content = {
        "type": "QUICK_REPLIES",
        "payload": {
            "text": {"content": "Still hungry?"},
            "actions": [
                {"type": "REPLY_BUTTON", "text": "Yes", "postback": "yes"},
                {"type": "REPLY_BUTTON", "text": "No"},
            ],
        },
    }
    reply = _agent_sends(stack, contact["id"], content)
    message = _delivered(stack, reply["message"]["idOnExternalPlatform"])["message"]
    assert message["fallbackText"] == "Still hungry?\n• Yes\n• No"
    assert message["rich"]["choices"][1] == {
        "label": "No",
        "postback": None,
        "description": None,
        "imageUrl": None,
    }


def test_an_unknown_type_is_delivered_as_its_fallback_text(stack: Stack) -> None:
    contact = _open_contact(stack)
    content = {"type": "PLUGIN", "fallbackText": "See our specials", "payload": {"x": 1}}
    reply = _agent_sends(stack, contact["id"], content)
    message = _delivered(stack, reply["message"]["idOnExternalPlatform"])["message"]
    assert message["text"] == message["fallbackText"] == "See our specials"
    assert message["rich"] is None
    assert message["content"]["type"] == "PLUGIN"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (
            {"type": "RICH_LINK", "payload": {"title": {"content": "x"}, "url": "javascript:1"}},
            "messageContent.payload.url",
        ),
        (
            {
                "type": "QUICK_REPLIES",
                "payload": {"text": {"content": "x"}, "actions": [{"text": "a"}] * 14},
            },
            "messageContent.payload.actions",
        ),
        (
            {
                "type": "LIST_PICKER",
                "payload": {
                    "title": {"content": "x"},
                    "actions": [{"text": "a", "icon": {"url": "data:image/png;base64,AA"}}],
                },
            },
            "messageContent.payload.actions[0].icon.url",
        ),
        (
            {"type": "ADAPTIVE_CARD", "payload": {"type": "AdaptiveCard", "body": []}},
            "messageContent.payload",
        ),
    ],
)
def test_rich_content_out_of_bounds_is_refused_and_stored_nowhere(
    stack: Stack, content: dict[str, Any], where: str
) -> None:
    contact = _open_contact(stack)
    response = stack.emulator.admin.post(
        f"/emulator/contacts/{contact['id']}/reply", json={"messageContent": content}
    )
    assert response.status_code == 502, response.text
    refused = [c for c in stack.emulator.callbacks() if c["status"] == 422]
    assert refused, stack.emulator.callbacks()
    problem = refused[-1]["responseBody"]
    assert problem["type"] == "urn:byoc:problem:invalid-rich-content"
    assert problem["detail"].startswith(where + ":")
    assert stack.platform.of_type("message.created") == []


def test_a_choice_reaches_cxone_with_its_postback(stack: Stack) -> None:
    accepted = stack.customer_says("Latte", postback="drink=latte")
    contact = stack.contact_for_thread(accepted["threadId"])
    creates = wait_for(
        lambda: stack.emulator.requests(path_contains="/messages", method="POST"),
        what="create-message call",
    )
    assert creates[-1]["requestBody"]["messageContent"] == {
        "type": "TEXT",
        "payload": {"text": "Latte"},
        "postback": "drink=latte",
    }
    recorded = stack.emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
    assert recorded["messages"][0]["messageContent"]["postback"] == "drink=latte"
    transcript = stack.signed(
        "GET", f"/api/v1/channels/{stack.channel_id}/threads/{accepted['threadId']}/messages"
    ).json()
    assert transcript["messages"][0]["content"]["postback"] == "drink=latte"


def test_a_postback_needs_its_label_and_a_bounded_size(stack: Stack) -> None:
    path = f"/api/v1/channels/{stack.channel_id}/messages"
    customer = {"id": "wh-user-1"}
    too_long = stack.signed(
        "POST", path, {"customer": customer, "text": "a", "postback": "p" * 1001}
    )
    assert too_long.status_code == 422
    assert too_long.json()["type"] == "urn:byoc:problem:invalid-input"
    no_label = stack.signed("POST", path, {"customer": customer, "postback": "drink=tea"})
    assert no_label.status_code == 422
