"""The emulated agents calling the Integration Box, with the token dance (contract §2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cxone_emulator.config import ReplyStyle
from tests.support.box_receiver import CHANNEL_ID, BoxReceiver, inbound_message, wired
from tests.support.emulator import Emulator


def _open_contact(api: httpx.Client, thread_id: str = "thread-1") -> str:
    created = api.post(
        f"/channels/{CHANNEL_ID}/messages", json=inbound_message(thread_id=thread_id)
    ).json()
    contact_id: str = created["consumerContact"]["id"]
    return contact_id


def _dance(callbacks: list[dict[str, Any]]) -> list[tuple[str, int | None, bool]]:
    """(last path segment, status, hadToken) of each callback attempt."""
    return [(c["url"].rsplit("/", 1)[-1], c["status"], c["hadToken"]) for c in callbacks]


@pytest.mark.parametrize(
    ("style", "path_part", "returned_prefix"),
    [
        ("dfo3", "/box/2.0/channel/chat_test/outbound", "platform-"),
        ("legacy", "/posts/", "legacy-"),
    ],
)
def test_reply_does_the_token_dance(
    style: ReplyStyle, path_part: str, returned_prefix: str
) -> None:
    with wired(style) as (emu, box), emu.api_client() as api:
        contact_id = _open_contact(api)
        reply = emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "Hi Ann"})
        assert reply.status_code == 200, reply.text
        message = reply.json()["message"]
        assert message["status"] == "sent"
        assert message["direction"] == "outbound"
        assert message["idOnExternalPlatform"].startswith(returned_prefix)
        assert reply.json()["callback"]["status"] == 200

        callbacks = emu.callbacks()
        assert [(c["status"], c["hadToken"]) for c in callbacks] == [
            (401, False),
            (200, False),
            (200, True),
        ]
        assert path_part in callbacks[0]["url"]
        assert callbacks[1]["url"] == f"{box.url}/token"
        assert callbacks[1]["requestBody"]["grant_type"] == "client_credentials"
        assert callbacks[1]["requestBody"]["client_secret"] == "<redacted>"
        body = callbacks[2]["requestBody"]
        assert callbacks[0]["requestBody"] == body
        assert body["messageContent"] == {"type": "TEXT", "payload": {"text": "Hi Ann"}}
        assert body["message"]["id"] == message["id"]
        assert body["thread"] == {"id": message["threadId"], "idOnExternalPlatform": "thread-1"}
        assert body["brand"] == {
            "id": 1001,
            "tenantId": emu.config.tenant_id,
            "businessUnitId": 4600,
        }
        assert body["endUserRecipients"] == [
            {
                "idOnExternalPlatform": "customer-1",
                "name": "Ann",
                "isPrimary": True,
                "isPrivate": False,
            }
        ]
        assert body["authorUser"]["isBotUser"] is False
        assert body["isReplyToSpecificMessage"] is False
        if style == "legacy":
            assert callbacks[0]["url"].endswith(f"/1.0/posts/{message['threadId']}/messages")

        # The platform's id lets the middleware report delivery on the agent message.
        status = api.put(
            f"/channels/{CHANNEL_ID}/messages/{message['idOnExternalPlatform']}/status",
            json={"status": "seen"},
        )
        assert status.json()["message"]["status"] == "seen"
        # A reply takes the case.
        assert emu.admin.get(f"/emulator/contacts/{contact_id}").json()["status"] == "open"


def test_cached_token_is_reused_then_refreshed_after_expiry(
    emu: Emulator, box: BoxReceiver, api: httpx.Client
) -> None:
    contact_id = _open_contact(api)
    for text in ("one", "two"):
        assert emu.admin.post(
            f"/emulator/contacts/{contact_id}/reply", json={"text": text}
        ).is_success
    box.expire_tokens()
    assert emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "3"}).is_success
    assert _dance(emu.callbacks()) == [
        ("outbound", 401, False),
        ("token", 200, False),
        ("outbound", 200, True),
        ("outbound", 200, True),  # second reply: cached token, no dance
        ("outbound", 401, True),  # expired cached token is still sent
        ("token", 200, False),
        ("outbound", 200, True),
    ]


def test_5xx_is_retried_with_the_same_message_id(
    emu: Emulator, box: BoxReceiver, api: httpx.Client
) -> None:
    contact_id = _open_contact(api)
    emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "warm up"})
    emu.admin.delete("/emulator/callbacks")
    box.failures_to_inject = 2
    reply = emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "again"})
    assert reply.status_code == 200
    attempts = emu.callbacks()
    assert [a["status"] for a in attempts] == [500, 500, 200]
    assert len({a["requestBody"]["message"]["id"] for a in attempts}) == 1


def test_final_failure_keeps_a_failed_message_and_answers_502(
    emu: Emulator, box: BoxReceiver, api: httpx.Client
) -> None:
    contact_id = _open_contact(api)
    emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "warm up"})
    box.failures_to_inject = 10
    reply = emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "lost"})
    assert reply.status_code == 502
    assert reply.json()["errors"][0]["errorCode"] == "CallbackFailed"
    assert reply.json()["callback"]["status"] == 500
    assert reply.json()["message"]["status"] == "failed"
    transcript = emu.admin.get(f"/emulator/contacts/{contact_id}").json()["messages"]
    assert transcript[-1]["status"] == "failed"
    # 1 try + callback_retries (2) retries for the failing reply.
    assert [c["status"] for c in emu.callbacks()][-3:] == [500, 500, 500]


def test_unreachable_box_is_a_502_with_the_connection_error(emu: Emulator) -> None:
    emu.admin.post(
        "/emulator/integrations",
        json={
            "id": "dead",
            "boxUrl": "http://127.0.0.1:9/box",
            "authorizationUrl": "http://127.0.0.1:9/token",
            "clientId": "c",
            "clientSecret": "s",
        },
    ).raise_for_status()
    with emu.api_client() as api:
        channel = {
            "id": "chat_dead",
            "idOnExternalPlatform": "dead",
            "channelIntegrationId": "dead",
            "realExternalPlatformId": "custom",
            "name": "Dead",
            "isPrivate": True,
            "hasTreeStructure": False,
        }
        api.post("/channels", json=channel).raise_for_status()
        contact = api.post("/channels/chat_dead/messages", json=inbound_message()).json()
    reply = emu.admin.post(
        f"/emulator/contacts/{contact['consumerContact']['id']}/reply", json={"text": "x"}
    )
    assert reply.status_code == 502
    assert "ConnectError" in reply.json()["callback"]["error"]
    assert len(emu.callbacks()) == 3


def test_agent_typing_calls_the_sender_action(
    emu: Emulator, box: BoxReceiver, api: httpx.Client
) -> None:
    contact_id = _open_contact(api)
    on = emu.admin.post(f"/emulator/contacts/{contact_id}/typing", json={"typing": True})
    assert on.status_code == 200
    assert on.json()["callback"]["status"] == 204
    off = emu.admin.post(f"/emulator/contacts/{contact_id}/typing", json={"typing": False})
    assert off.json()["callback"]["status"] == 204
    sent = [c for c in box.box_calls() if c["authorization"]]
    assert sent[0]["path"] == f"/box/1.0/channel/{CHANNEL_ID}/thread/thread-1/sender-action"
    assert [c["body"]["senderAction"]["action"] for c in sent] == ["isTypingOn", "isTypingOff"]
    assert sent[0]["body"]["brand"]["id"] == 1001
    assert sent[0]["body"]["authorUser"]["firstName"] == "Alex"


def test_agent_outbound_validates_then_adopts_the_platform_thread(
    emu: Emulator, box: BoxReceiver, api: httpx.Client
) -> None:
    started = emu.admin.post(
        f"/emulator/channels/{CHANNEL_ID}/outbound",
        json={"customerId": "customer-7", "customerName": "Cy", "text": "Your parcel"},
    )
    assert started.status_code == 200, started.text
    contact = started.json()["contact"]
    assert contact["direction"] == "outbound"
    assert contact["status"] == "open"
    assert contact["threadIdOnExternalPlatform"] == "platform-thread-1"
    assert started.json()["message"]["idOnExternalPlatform"].startswith("platform-")

    urls = [c["url"].removeprefix(box.url) for c in emu.callbacks() if c["hadToken"]]
    assert urls == [
        f"/box/1.0/channel/{CHANNEL_ID}/recipients/validation",
        f"/box/2.0/channel/{CHANNEL_ID}/outbound",
    ]
    validation, outbound = (c for c in box.box_calls() if c["authorization"])
    assert validation["body"]["endUserRecipients"][0] == {
        "idOnExternalPlatform": "customer-7",
        "name": "Cy",
        "isPrimary": True,
        "isPrivate": False,
    }
    assert outbound["body"]["thread"]["idOnExternalPlatform"].startswith("de-")
    assert outbound["body"]["messageContent"]["payload"]["text"] == "Your parcel"

    # The customer's answer on the platform's thread joins the outbound contact.
    answer = api.post(
        f"/channels/{CHANNEL_ID}/messages",
        json=inbound_message("answer", thread_id="platform-thread-1", customer_id="customer-7"),
    ).json()
    assert answer["consumerContact"]["id"] == contact["id"]


def test_agent_outbound_refused_by_validation_is_422(emu: Emulator, box: BoxReceiver) -> None:
    box.refused_recipients.add("stranger")
    refused = emu.admin.post(
        f"/emulator/channels/{CHANNEL_ID}/outbound", json={"customerId": "stranger", "text": "Hi"}
    )
    assert refused.status_code == 422
    assert refused.json()["callback"]["status"] == 400
    assert refused.json()["callback"]["body"]["errorCode"] == "outboundValidationFailed"
    assert not any("/2.0/" in c["url"] for c in emu.callbacks())
    assert emu.admin.get("/emulator/contacts").json()["data"] == []


def test_legacy_integration_still_uses_2_0_for_agent_outbound() -> None:
    with wired("legacy") as (emu, box):
        started = emu.admin.post(
            f"/emulator/channels/{CHANNEL_ID}/outbound", json={"customerId": "c", "text": "Hi"}
        )
        assert started.status_code == 200
        assert any(c["path"].endswith("/2.0/channel/chat_test/outbound") for c in box.box_calls())


def test_reply_to_an_ended_contact_is_409(emu: Emulator, api: httpx.Client) -> None:
    contact_id = _open_contact(api)
    assert emu.admin.post(f"/emulator/contacts/{contact_id}/close").json()["status"] == "closed"
    response = emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "late"})
    assert response.status_code == 409
    assert emu.callbacks() == []


def test_callback_timeout_is_retried_with_the_same_message_id() -> None:
    with wired(callback_timeout_seconds=0.3) as (emu, box), emu.api_client() as api:
        contact_id = _open_contact(api)
        emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "warm up"})
        emu.admin.delete("/emulator/callbacks")
        box.slow_calls_to_inject = 1
        box.slow_seconds = 0.6
        reply = emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "slow"})
        assert reply.status_code == 200
        first, second = emu.callbacks()
        assert first["status"] is None
        assert "Timeout" in first["error"]
        assert second["status"] == 200
        assert first["requestBody"]["message"]["id"] == second["requestBody"]["message"]["id"]


@pytest.mark.parametrize("message_ids", ["header", "none"])
def test_reply_names_its_message_as_the_integration_says(message_ids: str) -> None:
    with wired() as (emu, box), emu.api_client() as api:
        registered = emu.admin.post(
            "/emulator/integrations",
            json={
                "id": "integration-1",
                "boxUrl": f"{box.url}/box",
                "authorizationUrl": f"{box.url}/token",
                "clientId": "box-client",
                "clientSecret": "box-secret",
                "messageIds": message_ids,
            },
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["messageIds"] == message_ids
        contact_id = _open_contact(api)
        box.failures_to_inject = 1  # one retry: it names the message the same way
        reply = emu.admin.post(f"/emulator/contacts/{contact_id}/reply", json={"text": "Hi"})
        assert reply.status_code == 200, reply.text
        message_id = reply.json()["message"]["id"]
        attempts = [c for c in box.box_calls() if c["authorization"]]
        assert len(attempts) == 2
        for attempt in attempts:
            assert "message" not in attempt["body"]
            expected = message_id if message_ids == "header" else None
            assert attempt["idempotencyKey"] == expected


def test_an_unknown_message_ids_value_is_refused() -> None:
    with wired() as (emu, box):
        refused = emu.admin.post(
            "/emulator/integrations",
            json={
                "boxUrl": f"{box.url}/box",
                "authorizationUrl": f"{box.url}/token",
                "clientId": "c",
                "clientSecret": "s",
                "messageIds": "sometimes",
            },
        )
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["field"] == "messageIds"
