"""Every kind of bad input gets a clear error, and nothing is stored or sent for it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from byoc.box.credentials import TokenIssuer
from byoc.channels.signing import signed_headers
from byoc.clock import ManualClock
from byoc.store import Database, clients
from byoc.tenancy import DEFAULT_TENANT_ID
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.problems import assert_problem
from tests.support.stack import SIGNING_KEY, Stack, box_token, running_stack
from tests.support.waiting import run_async, wait_for

# --- the token endpoint ----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["json", "form", "basic"])
def test_token_endpoint_accepts_json_form_and_basic(stack: Stack, style: str) -> None:
    url = stack.url + "/integration/box/1.0/token"
    creds = {"client_id": stack.client_id, "client_secret": stack.client_secret}
    if style == "json":
        response = loopback.post(url, json={**creds, "grant_type": "client_credentials"})
    elif style == "form":
        response = loopback.post(url, data={**creds, "grant_type": "client_credentials"})
    else:
        response = loopback.post(
            url,
            data={"grant_type": "client_credentials"},
            auth=(stack.client_id, stack.client_secret),
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == stack.settings.token_ttl_seconds
    assert response.headers["cache-control"] == "no-store"


def test_token_endpoint_errors_follow_rfc6749(stack: Stack) -> None:
    url = stack.url + "/integration/box/1.0/token"
    wrong_grant = loopback.post(
        url, json={"client_id": stack.client_id, "client_secret": "x", "grant_type": "password"}
    )
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    wrong_secret = loopback.post(
        url,
        json={
            "client_id": stack.client_id,
            "client_secret": "wrong",
            "grant_type": "client_credentials",
        },
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    garbage = loopback.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400
    assert garbage.json()["error"] == "invalid_request"


# --- bearer tokens on every callback ---------------------------------------------------------

CALLBACKS = [
    (
        "/integration/box/1.0/posts/123/messages",
        {"messageContent": {"type": "TEXT", "payload": {"text": "x"}}},
    ),
    (
        "/integration/box/2.0/channel/{channel}/outbound",
        {"messageContent": {"type": "TEXT", "payload": {"text": "x"}}},
    ),
    (
        "/integration/box/1.0/channel/{channel}/thread/thr_x/sender-action",
        {"senderAction": {"action": "isTypingOn"}},
    ),
    ("/integration/box/1.0/channel/{channel}/recipients/validation", {"endUserRecipients": []}),
]


@pytest.mark.parametrize(("path", "body"), CALLBACKS)
def test_every_callback_answers_401_without_a_valid_token(
    stack: Stack, path: str, body: dict[str, Any]
) -> None:
    url = stack.url + path.format(channel=stack.channel_id)
    issuer = stack.settings.public_url
    audience = issuer + "/integration/box"
    expired = TokenIssuer(
        SIGNING_KEY, 60, lambda: time.time() - 3600, issuer=issuer, audience=audience
    ).issue(stack.client_id, DEFAULT_TENANT_ID)
    forged = TokenIssuer("another-key-" + "x" * 32, 600, issuer=issuer, audience=audience).issue(
        stack.client_id, DEFAULT_TENANT_ID
    )
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": f"Bearer {expired.access_token}"},
        {"Authorization": f"Bearer {forged.access_token}"},
        {"Authorization": "Bearer b1.garbage"},
    ):
        response = loopback.post(url, json=body, headers=headers)
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_client_tokens_stop_working(tmp_path: Path, emulator: Emulator) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock) as stack:
        token = box_token(stack)
        url = stack.url + f"/integration/box/1.0/channel/{stack.channel_id}/recipients/validation"
        headers = {"Authorization": f"Bearer {token}"}

        def status() -> int:
            return loopback.post(url, json={"endUserRecipients": []}, headers=headers).status_code

        assert status() == 400

        async def revoke() -> None:
            db = Database(stack.settings.database_url)
            await db.run_write(clients.revoke_client, stack.client_id)
            await db.close()

        run_async(revoke())
        # The active clients are re-read from the store at most every 5 seconds.
        clock.advance(5_001)
        assert status() == 401


def test_brand_of_another_tenant_is_forbidden(stack: Stack) -> None:
    accepted = stack.customer_says("hello")
    token = box_token(stack)
    response = loopback.post(
        stack.url + f"/integration/box/2.0/channel/{stack.channel_id}/outbound",
        json={
            "brand": {"id": 999999, "tenantId": "someone-else", "businessUnitId": 1},
            "thread": {"idOnExternalPlatform": accepted["threadId"]},
            "messageContent": {"type": "TEXT", "payload": {"text": "not yours"}},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_problem(response, 403, "forbidden")
    assert stack.platform.events == []


def test_unknown_thread_and_channel_in_callbacks(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {box_token(stack)}"}
    reply = {
        "thread": {"idOnExternalPlatform": "thr_unknown"},
        "messageContent": {"type": "TEXT", "payload": {"text": "?"}},
    }
    base = stack.url + "/integration/box"
    assert_problem(
        loopback.post(
            f"{base}/2.0/channel/{stack.channel_id}/outbound", json=reply, headers=headers
        ),
        404,
        "conversation-not-found",
    )
    assert_problem(
        loopback.post(f"{base}/1.0/posts/424242/messages", json=reply, headers=headers),
        404,
        "conversation-not-found",
    )
    assert_problem(
        loopback.post(
            f"{base}/1.0/channel/nope/thread/thr_unknown/sender-action",
            json={"senderAction": {"action": "isTypingOn"}},
            headers=headers,
        ),
        404,
        "channel-not-found",
    )
    assert_problem(
        loopback.post(
            f"{base}/1.0/channel/{stack.channel_id}/thread/thr_x/sender-action",
            json={"senderAction": {"action": "dancing"}},
            headers=headers,
        ),
        422,
        "invalid-input",
    )


def test_retried_callback_for_the_same_de_message_delivers_once(stack: Stack) -> None:
    accepted = stack.customer_says("hello")
    headers = {"Authorization": f"Bearer {box_token(stack)}"}
    body = {
        "message": {"id": "de-msg-777"},
        "thread": {"idOnExternalPlatform": accepted["threadId"]},
        "messageContent": {"type": "TEXT", "payload": {"text": "said once"}},
    }
    url = stack.url + f"/integration/box/2.0/channel/{stack.channel_id}/outbound"
    first = loopback.post(url, json=body, headers=headers)
    second = loopback.post(url, json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    first_id = first.json()["message"]["idOnExternalPlatform"]
    assert second.json()["message"]["idOnExternalPlatform"] == first_id
    wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")
    wait_for(lambda: not stack.outbox(), what="empty outbox")
    assert [e["message"]["id"] for e in stack.platform.of_type("message.created")] == [first_id]


# --- the platform API ------------------------------------------------------------------------


def test_platform_api_signature_is_required_and_checked(stack: Stack) -> None:
    path = f"/api/v1/channels/{stack.channel_id}/messages"
    payload = {"customer": {"id": "u1"}, "text": "hi"}
    body = json.dumps(payload).encode()
    with loopback.client(base_url=stack.url) as client:
        unsigned = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert_problem(unsigned, 401, "unauthenticated")
        wrong_secret = stack.signed("POST", path, payload, secret="not-the-secret")
        assert_problem(wrong_secret, 401, "unauthenticated")
        stale = {
            "Content-Type": "application/json",
            **signed_headers(stack.channel_secret, body, now=time.time() - 3600),
        }
        assert_problem(client.post(path, content=body, headers=stale), 401, "unauthenticated")
        tampered = {
            "Content-Type": "application/json",
            **signed_headers(stack.channel_secret, body),
        }
        altered = body.replace(b"hi", b"ho")
        assert_problem(client.post(path, content=altered, headers=tampered), 401, "unauthenticated")
    assert stack.emulator.requests(path_contains="/messages") == []


def test_platform_api_bad_bodies(stack: Stack) -> None:
    path = f"/api/v1/channels/{stack.channel_id}/messages"
    malformed = b'{"customer": {"id": "u1"}, "text": '
    headers = {
        "Content-Type": "application/json",
        **signed_headers(stack.channel_secret, malformed),
    }
    with loopback.client(base_url=stack.url) as client:
        assert_problem(client.post(path, content=malformed, headers=headers), 400, "malformed-json")
    missing = assert_problem(
        stack.signed("POST", path, {"text": "no customer"}), 422, "invalid-input"
    )
    assert any(e["field"] == "customer" for e in missing["errors"])
    wrong_type = assert_problem(
        stack.signed("POST", path, {"customer": {"id": "u1"}, "text": 5}), 422, "invalid-input"
    )
    assert any(e["field"] == "text" for e in wrong_type["errors"])
    assert_problem(
        stack.signed("POST", path, {"customer": {"id": "u1"}, "text": "  "}), 422, "invalid-input"
    )
    assert_problem(
        stack.signed(
            "POST", "/api/v1/channels/chat_nope/messages", {"customer": {"id": "u1"}, "text": "x"}
        ),
        404,
        "channel-not-found",
    )
    assert_problem(
        stack.signed("POST", path, {"customer": {"id": "u1"}, "text": "x", "threadId": "thr_nope"}),
        404,
        "conversation-not-found",
    )
    assert_problem(
        stack.signed(
            "POST",
            f"/api/v1/channels/{stack.channel_id}/receipts",
            {"messageId": "msg_nope", "status": "seen"},
        ),
        404,
        "message-not-found",
    )
    assert stack.emulator.requests(path_contains="/messages") == []


def test_oversized_body_is_refused_with_413(stack: Stack) -> None:
    path = f"/api/v1/channels/{stack.channel_id}/messages"
    big = {"customer": {"id": "u1"}, "text": "x" * (stack.settings.max_body_bytes + 10)}
    body = json.dumps(big).encode()
    headers = {"Content-Type": "application/json", **signed_headers(stack.channel_secret, body)}
    with loopback.client(base_url=stack.url) as client:
        response = client.post(path, content=body, headers=headers)
        assert_problem(response, 413, "payload-too-large")

        def chunks() -> Any:
            for _ in range(stack.settings.max_body_bytes // 65536 + 2):
                yield b"x" * 65536

        streamed = client.post(path, content=chunks(), headers={"Content-Type": "application/json"})
        assert_problem(streamed, 413, "payload-too-large")


def test_message_to_an_ended_conversation_is_refused_and_not_forwarded(stack: Stack) -> None:
    import asyncio

    from byoc.store import Database, conversations

    accepted = stack.customer_says("hello")
    stack.contact_for_thread(accepted["threadId"])

    async def end() -> None:
        db = Database(stack.settings.database_url)
        await db.run_write(
            conversations.update_conversation, accepted["threadId"], state="ended", ended_at=1
        )
        await db.close()

    asyncio.run(end())
    before = len(stack.emulator.requests(path_contains="/messages", method="POST"))
    refused = stack.signed(
        "POST",
        f"/api/v1/channels/{stack.channel_id}/messages",
        {"customer": {"id": "wh-user-1"}, "text": "still there?", "threadId": accepted["threadId"]},
    )
    assert_problem(refused, 409, "conversation-ended")
    typing = stack.signed(
        "POST",
        f"/api/v1/channels/{stack.channel_id}/typing",
        {"threadId": accepted["threadId"], "typing": True},
    )
    assert_problem(typing, 409, "conversation-ended")
    # Without a thread id the customer starts a new conversation.
    fresh = stack.customer_says("new question")
    assert fresh["threadId"] != accepted["threadId"]
    stack.contact_for_thread(fresh["threadId"])
    creates = stack.emulator.requests(path_contains="/messages", method="POST")
    assert len(creates) == before + 1


def test_unknown_route_and_method_are_problems(stack: Stack) -> None:
    assert_problem(loopback.get(stack.url + "/nope"), 404, "not-found")
    assert_problem(
        loopback.get(stack.url + "/integration/box/1.0/token"), 405, "method-not-allowed"
    )


def test_openapi_documents_the_platform_api(stack: Stack) -> None:
    spec = loopback.get(stack.url + "/openapi.json").json()
    assert "/api/v1/channels/{channel_id}/messages" in spec["paths"]
    assert "/integration/box/1.0/token" in spec["paths"]
