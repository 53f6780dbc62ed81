"""Create message, duplicates, status, customer typing and middleware outbound (§3.2-§3.5)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.box_receiver import CHANNEL_ID, inbound_message
from tests.support.emulator import Emulator

MESSAGES = f"/channels/{CHANNEL_ID}/messages"


def _error(response: httpx.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors[0]


def test_first_message_creates_thread_contact_and_message(api: httpx.Client) -> None:
    response = api.post(MESSAGES, json=inbound_message(text="I need help"))
    assert response.status_code == 200
    assert "X-Emulator-Duplicate" not in response.headers
    contact = response.json()["consumerContact"]
    message = response.json()["message"]
    assert contact["status"] == "new"
    assert contact["direction"] == "inbound"
    assert contact["threadIdOnExternalPlatform"] == "thread-1"
    assert contact["endUserIdOnExternalPlatform"] == "customer-1"
    assert contact["id"].isdigit()
    assert message["idOnExternalPlatform"] == "msg-1"
    assert message["contactId"] == contact["id"]
    assert message["threadId"] == contact["threadId"]
    assert message["status"] == "received"
    assert message["createdAt"] == "2026-01-02T03:04:05.678Z"
    assert message["messageContent"]["payload"]["text"] == "I need help"
    assert message["authorEndUserIdentity"]["firstName"] == "Ann"


def test_second_message_joins_the_same_contact(api: httpx.Client) -> None:
    first = api.post(MESSAGES, json=inbound_message("m1")).json()
    second = api.post(MESSAGES, json=inbound_message("m2")).json()
    assert second["consumerContact"]["id"] == first["consumerContact"]["id"]
    other = api.post(MESSAGES, json=inbound_message("m3", thread_id="thread-2")).json()
    assert int(other["consumerContact"]["id"]) > int(first["consumerContact"]["id"])


def test_optional_fields_are_stored_as_given(api: httpx.Client) -> None:
    body = inbound_message(
        attachments=[{"friendlyName": "a.png", "url": "https://files.example/a.png"}],
        replyToMessage={"idOnExternalPlatform": "m0"},
        externalAttributes=[{"key": "k", "value": "v"}],
        contact={"customFields": [{"ident": "plan", "value": "gold"}]},
    )
    created = api.post(MESSAGES, json=body).json()
    assert created["message"]["attachments"][0]["friendlyName"] == "a.png"
    assert created["message"]["replyToMessage"] == {"idOnExternalPlatform": "m0"}
    assert created["message"]["externalAttributes"] == [{"key": "k", "value": "v"}]
    assert created["consumerContact"]["customFields"] == [{"ident": "plan", "value": "gold"}]


def test_duplicate_message_id_replays_the_original(api: httpx.Client, emu: Emulator) -> None:
    first = api.post(MESSAGES, json=inbound_message("dup", text="once"))
    again = api.post(MESSAGES, json=inbound_message("dup", text="twice"))
    assert again.status_code == 200
    assert again.headers["X-Emulator-Duplicate"] == "true"
    assert again.json()["message"] == first.json()["message"]
    assert again.json()["consumerContact"]["id"] == first.json()["consumerContact"]["id"]
    contacts = emu.admin.get("/emulator/contacts").json()["data"]
    assert len(contacts[0]["messages"]) == 1


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"idOnExternalPlatform": None}, "idOnExternalPlatform", "MissingField"),
        ({"idOnExternalPlatform": 5}, "idOnExternalPlatform", "InvalidType"),
        ({"direction": "outbound"}, "direction", "InvalidValue"),
        ({"createdAtWithMilliseconds": "yesterday"}, "createdAtWithMilliseconds", "InvalidValue"),
        ({"thread": {}}, "thread.idOnExternalPlatform", "MissingField"),
        ({"thread": "t"}, "thread", "InvalidType"),
        ({"messageContent": {"type": "TEXT"}}, "messageContent.payload", "MissingField"),
        (
            {"messageContent": {"type": "TEXT", "payload": {"text": 3}}},
            "messageContent.payload.text",
            "InvalidType",
        ),
        ({"messageContent": {"type": "VIDEO"}}, "messageContent.type", "InvalidValue"),
        (
            {"authorEndUserIdentity": {}},
            "authorEndUserIdentity.idOnExternalPlatform",
            "MissingField",
        ),
        ({"attachments": [{"friendlyName": "x"}]}, "attachments[0].url", "MissingField"),
        ({"contact": {"status": "weird"}}, "contact.status", "InvalidRequest"),
    ],
)
def test_invalid_message_is_400_naming_the_field(
    api: httpx.Client, change: dict[str, Any], field: str, code: str
) -> None:
    body = inbound_message()
    for key, value in change.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    response = api.post(MESSAGES, json=body)
    assert response.status_code == 400
    assert _error(response)["field"] == field
    assert _error(response)["errorCode"] == code
    assert field in _error(response)["message"]


def test_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post(
        MESSAGES, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert _error(response)["errorCode"] == "InvalidJson"
    assert api.post(MESSAGES, json=[1, 2]).status_code == 400


def test_unknown_channel_is_404(api: httpx.Client) -> None:
    for method, path in [
        ("POST", "/channels/nope/messages"),
        ("PUT", "/channels/nope/messages/m/status"),
        ("POST", "/channels/nope/threads/t/sender-actions"),
        ("POST", "/channels/nope/outbound"),
        ("GET", "/channels/nope/threads/t"),
        ("GET", "/channels/nope"),
        ("DELETE", "/channels/nope"),
    ]:
        response = api.request(method, path, json={})
        assert response.status_code == 404, path
        assert _error(response)["errorCode"] == "ChannelNotFound", path


def test_closed_contact_gets_a_new_case_on_the_same_thread(api: httpx.Client) -> None:
    first = api.post(MESSAGES, json=inbound_message("m1")).json()["consumerContact"]
    closed = api.put(f"/contacts/{first['id']}/status", json={"status": "closed"})
    assert closed.json()["status"] == "closed"
    second = api.post(MESSAGES, json=inbound_message("m2")).json()["consumerContact"]
    assert second["id"] != first["id"]
    assert second["threadId"] == first["threadId"]
    assert second["status"] == "new"


def test_thread_that_cannot_take_messages_refuses_them(api: httpx.Client) -> None:
    api.post(MESSAGES, json=inbound_message("m1"))
    closed = api.put(f"/channels/{CHANNEL_ID}/threads/thread-1", json={"canAddMoreMessages": False})
    assert closed.json()["canAddMoreMessages"] is False
    response = api.post(MESSAGES, json=inbound_message("m2"))
    assert response.status_code == 400
    assert _error(response)["errorCode"] == "ThreadClosed"


def test_message_status_updates(api: httpx.Client) -> None:
    created = api.post(
        f"/channels/{CHANNEL_ID}/outbound",
        json={
            "idOnExternalPlatform": "out-1",
            "thread": {"idOnExternalPlatform": "thread-9"},
            "messageContent": {"type": "TEXT", "payload": {"text": "Hi there"}},
            "recipients": [{"idOnExternalPlatform": "customer-9", "name": "Bo"}],
        },
    )
    assert created.status_code == 200
    path = f"/channels/{CHANNEL_ID}/messages/out-1/status"
    delivered = api.put(path, json={"status": "delivered", "updatedAt": "2026-01-01T00:00:01Z"})
    assert delivered.json()["message"]["status"] == "delivered"
    failed = api.put(path, json={"status": "failed", "reason": "blocked"})
    assert failed.json()["message"]["statusReason"] == "blocked"
    assert api.put(path, json={"status": "read"}).status_code == 400
    assert _error(api.put(path, json={}))["field"] == "status"
    unknown = api.put(f"/channels/{CHANNEL_ID}/messages/nope/status", json={"status": "seen"})
    assert unknown.status_code == 404
    assert _error(unknown)["errorCode"] == "MessageNotFound"


def test_status_of_a_customer_message_is_refused(api: httpx.Client) -> None:
    api.post(MESSAGES, json=inbound_message("m1"))
    response = api.put(f"{MESSAGES}/m1/status", json={"status": "seen"})
    assert response.status_code == 400
    assert _error(response)["errorCode"] == "InvalidDirection"


def test_customer_typing_shows_on_the_agent_contact(api: httpx.Client, emu: Emulator) -> None:
    api.post(MESSAGES, json=inbound_message())
    path = f"/channels/{CHANNEL_ID}/threads/thread-1/sender-actions"
    assert api.post(path, json={"action": "isTypingOn"}).status_code == 204
    assert emu.admin.get("/emulator/contacts").json()["data"][0]["customerTyping"] is True
    assert api.post(path, json={"action": "isTypingOff"}).status_code == 204
    assert emu.admin.get("/emulator/contacts").json()["data"][0]["customerTyping"] is False
    assert api.post(path, json={"action": "dancing"}).status_code == 400
    unknown = api.post(f"/channels/{CHANNEL_ID}/threads/nope/sender-actions", json={})
    assert unknown.status_code == 404


def test_middleware_outbound_opens_a_contact_without_calling_back(
    api: httpx.Client, emu: Emulator
) -> None:
    body = {
        "thread": {"idOnExternalPlatform": "new-thread"},
        "messageContent": {"type": "TEXT", "payload": {"text": "Your order shipped"}},
        "recipients": [{"idOnExternalPlatform": "customer-5"}],
    }
    created = api.post(f"/channels/{CHANNEL_ID}/outbound", json=body).json()
    assert created["consumerContact"]["direction"] == "outbound"
    assert created["consumerContact"]["status"] == "open"
    assert created["message"]["direction"] == "outbound"
    assert created["message"]["status"] == "sent"
    assert emu.callbacks() == []
    again = api.post(f"/channels/{CHANNEL_ID}/outbound", json=body).json()
    assert again["consumerContact"]["id"] == created["consumerContact"]["id"]
    missing = api.post(f"/channels/{CHANNEL_ID}/outbound", json={**body, "recipients": [{}]})
    assert _error(missing)["field"] == "recipients[0].idOnExternalPlatform"
    empty = api.post(f"/channels/{CHANNEL_ID}/outbound", json={**body, "recipients": []})
    assert _error(empty)["field"] == "recipients"


def test_close_armed_for_the_next_message_lands_just_before_it(
    api: httpx.Client, emu: Emulator
) -> None:
    first = api.post(MESSAGES, json=inbound_message("m1")).json()
    contact_id = first["consumerContact"]["id"]
    armed = emu.admin.post(f"/emulator/contacts/{contact_id}/close-on-next-message")
    assert armed.status_code == 200
    second = api.post(MESSAGES, json=inbound_message("m2")).json()
    assert second["consumerContact"]["id"] != contact_id  # DE opened a new case
    assert api.get(f"/contacts/{contact_id}").json()["status"] == "closed"
    third = api.post(MESSAGES, json=inbound_message("m3")).json()
    assert third["consumerContact"]["id"] == second["consumerContact"]["id"]  # armed once

    new_contact = second["consumerContact"]["id"]
    emu.admin.post(
        f"/emulator/contacts/{new_contact}/close-on-next-message", json={"what": "thread"}
    ).raise_for_status()
    refused = api.post(MESSAGES, json=inbound_message("m4"))
    assert refused.status_code == 400
    assert _error(refused)["errorCode"] == "ThreadClosed"
    bad = emu.admin.post(
        f"/emulator/contacts/{new_contact}/close-on-next-message", json={"what": 1}
    )
    assert bad.status_code == 400
