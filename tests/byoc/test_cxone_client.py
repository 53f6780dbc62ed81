"""DeClient against a test transport (the seam of `byoc.http`): the wire format, the 401
retry and the error mapping.

The end-to-end cases against the real emulator live in test_cxone_against_emulator.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from byoc.cxone import (
    ENDED_CONTACT_STATUSES,
    ChannelCreate,
    CreateMessage,
    CustomFieldDefinition,
    CustomFieldValue,
    CxoneAuthError,
    CxoneConflict,
    CxoneError,
    CxoneNotFound,
    CxoneRejected,
    CxoneUnavailable,
    DeClient,
    EndUserIdentity,
    MessageContent,
    OutboundMessage,
    Recipient,
    ThreadRef,
    TokenManager,
    discover_endpoints,
    iso_millis,
)
from byoc.http import HttpClient, HttpRequest, HttpResponse, HttpTimeout, HttpTransportError
from byoc.http import response as answer

API = "https://api-de-na1.example.test/dfo/3.0"
TOKEN_URL = "https://auth.example.test/auth/token"

Route = Callable[[HttpRequest], Awaitable[HttpResponse] | HttpResponse]

CONTACT = {"id": "c-1", "status": "new", "threadIdOnExternalPlatform": "t-1", "channelId": "ch"}
CREATED = {
    "consumerContact": CONTACT,
    "message": {"id": "m-uuid", "idOnExternalPlatform": "msg-1", "threadId": "th-uuid"},
}


class FakeCxone:
    """Token endpoint plus one programmable DE answer; records what the client sends."""

    def __init__(self) -> None:
        self.de_requests: list[HttpRequest] = []
        self.timeouts: list[float] = []
        self.token_requests = 0
        self.route: Route = lambda request: answer(request, 200, json={})

    async def __call__(self, request: HttpRequest, timeout: float) -> HttpResponse:
        if str(request.url) == TOKEN_URL:
            self.token_requests += 1
            body = {"access_token": f"tok-{self.token_requests}", "expires_in": 3600}
            return answer(request, 200, json=body)
        self.de_requests.append(request)
        self.timeouts.append(timeout)
        routed = self.route(request)
        if isinstance(routed, HttpResponse):
            return routed
        return await routed

    @property
    def last(self) -> HttpRequest:
        return self.de_requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)


@pytest.fixture
def fake() -> FakeCxone:
    return FakeCxone()


@pytest.fixture
async def http(fake: FakeCxone) -> AsyncIterator[HttpClient]:
    async with HttpClient(transport=fake) as client:
        yield client


@pytest.fixture
def tokens(http: HttpClient) -> TokenManager:
    return TokenManager(http, TOKEN_URL, "key", "secret", "app", "app-secret")


@pytest.fixture
def client(http: HttpClient, tokens: TokenManager) -> DeClient:
    return DeClient(http, API + "/", tokens, timeout=0.5)


def error_body(message: str, field: str | None = None) -> dict[str, object]:
    item: dict[str, object] = {"message": message, "errorCode": "Oops"}
    if field:
        item["field"] = field
    return {"errors": [item], "uid": "uid-123"}


def a_message(external_id: str = "msg-1") -> CreateMessage:
    return CreateMessage(
        id_on_external_platform=external_id,
        thread=ThreadRef(id_on_external_platform="t-1", thread_name="Chat"),
        message_content=MessageContent.of_text("hello"),
        author_end_user_identity=EndUserIdentity(
            id_on_external_platform="cust-1",
            first_name="Ada",
            custom_fields=[CustomFieldValue(ident="email", value="ada@example.test")],
        ),
        created_at_with_milliseconds=iso_millis(datetime(2026, 11, 24, 20, 6, 2, 123456, UTC)),
    )


# --- wire format ------------------------------------------------------------------------------


async def test_create_message_sends_camel_case_json_with_bearer(
    client: DeClient, fake: FakeCxone
) -> None:
    fake.route = lambda request: answer(request, 200, json=CREATED)

    created = await client.create_message("chat_1", a_message())

    request = fake.last
    assert request.method == "POST"
    assert str(request.url) == f"{API}/channels/chat_1/messages"
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.headers["content-type"] == "application/json"
    assert fake.timeouts[-1] == 0.5  # the whole exchange is bounded by the client's timeout
    assert fake.last_json() == {
        "idOnExternalPlatform": "msg-1",
        "direction": "inbound",
        "createdAtWithMilliseconds": "2026-11-24T20:06:02.123Z",
        "thread": {"idOnExternalPlatform": "t-1", "threadName": "Chat"},
        "messageContent": {"type": "TEXT", "payload": {"text": "hello"}},
        "authorEndUserIdentity": {
            "idOnExternalPlatform": "cust-1",
            "firstName": "Ada",
            "customFields": [{"ident": "email", "value": "ada@example.test"}],
        },
    }
    assert created.consumer_contact.id == "c-1"
    assert created.message.id_on_external_platform == "msg-1"


async def test_responses_keep_unknown_fields_and_accept_numeric_ids(
    client: DeClient, fake: FakeCxone
) -> None:
    body = {"id": 42, "status": "closed", "brandNew": {"x": 1}}
    fake.route = lambda request: answer(request, 200, json=body)

    contact = await client.get_contact("42")

    assert contact.id == "42"
    assert contact.is_ended
    assert contact.model_extra == {"brandNew": {"x": 1}}
    assert {"closed", "resolved", "trashed"} == ENDED_CONTACT_STATUSES


async def test_path_segments_are_quoted(client: DeClient, fake: FakeCxone) -> None:
    fake.route = lambda request: answer(request, 204)
    await client.sender_action("ch/1", "thread?x=1#y", "isTypingOn")
    assert fake.last.path == "/dfo/3.0/channels/ch%2F1/threads/thread%3Fx%3D1%23y/sender-actions"
    assert fake.last_json() == {"action": "isTypingOn"}


async def test_update_message_status(client: DeClient, fake: FakeCxone) -> None:
    fake.route = lambda request: answer(request, 200, json={"message": {}})
    when = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone(timedelta(hours=2)))
    await client.update_message_status("ch", "out-1", "failed", updated_at=when, reason="blocked")
    assert fake.last.method == "PUT"
    assert fake.last.path == "/dfo/3.0/channels/ch/messages/out-1/status"
    assert fake.last_json() == {
        "status": "failed",
        "updatedAt": "2026-01-02T01:04:05.006Z",
        "reason": "blocked",
    }

    await client.update_message_status("ch", "out-1", "seen")
    body = fake.last_json()
    assert set(body) == {"status", "updatedAt"}
    sent = datetime.fromisoformat(body["updatedAt"])
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 5


async def test_send_outbound(client: DeClient, fake: FakeCxone) -> None:
    fake.route = lambda request: answer(request, 200, json=CREATED)
    message = OutboundMessage(
        thread=ThreadRef(id_on_external_platform="t-9"),
        message_content=MessageContent.of_text("hi there"),
        recipients=[Recipient(id_on_external_platform="cust-1", name="Ada")],
        id_on_external_platform="out-1",
    )
    created = await client.send_outbound("ch", message)
    assert fake.last.path == "/dfo/3.0/channels/ch/outbound"
    assert fake.last_json() == {
        "thread": {"idOnExternalPlatform": "t-9"},
        "messageContent": {"type": "TEXT", "payload": {"text": "hi there"}},
        "recipients": [{"idOnExternalPlatform": "cust-1", "name": "Ada"}],
        "idOnExternalPlatform": "out-1",
    }
    assert created.consumer_contact.status == "new"


async def test_list_contacts_repeats_array_parameters(client: DeClient, fake: FakeCxone) -> None:
    fake.route = lambda request: answer(request, 200, json={"hits": 1, "data": [CONTACT]})
    contacts = await client.list_contacts(
        channel_ids=["a", "b"], statuses=["new", "open"], end_user_ids=["cust-1"]
    )
    assert [c.id for c in contacts] == ["c-1"]
    assert parse_qsl(urlsplit(fake.last.url).query) == [
        ("channel[]", "a"),
        ("channel[]", "b"),
        ("status[]", "new"),
        ("status[]", "open"),
        ("endUserIdOnExternalPlatform[]", "cust-1"),
    ]
    await client.list_contacts()
    assert urlsplit(fake.last.url).query == ""


async def test_contact_status_and_abandon(client: DeClient, fake: FakeCxone) -> None:
    fake.route = lambda request: answer(request, 200, json={**CONTACT, "status": "closed"})
    closed = await client.set_contact_status("c-1", "closed")
    assert (fake.last.method, fake.last.path) == ("PUT", "/dfo/3.0/contacts/c-1/status")
    assert fake.last_json() == {"status": "closed"}
    assert closed.is_ended
    await client.abandon_contact("c-1", "expired")
    assert (fake.last.method, fake.last.path) == ("POST", "/dfo/3.0/contacts/c-1/abandon")
    assert fake.last_json() == {"type": "expired"}


async def test_threads(client: DeClient, fake: FakeCxone) -> None:
    thread = {"id": "th", "idOnExternalPlatform": "t-1", "channelId": "ch"}
    fake.route = lambda request: answer(request, 200, json={**thread, "canAddMoreMessages": True})
    info = await client.get_thread("ch", "t-1")
    assert (fake.last.method, fake.last.path) == ("GET", "/dfo/3.0/channels/ch/threads/t-1")
    assert info.can_add_more_messages

    fake.route = lambda request: answer(request, 200, json={**thread, "canAddMoreMessages": False})
    info = await client.update_thread("ch", "t-1", can_add_more_messages=False)
    assert (fake.last.method, fake.last.path) == ("PUT", "/dfo/3.0/channels/ch/threads/t-1")
    assert fake.last_json() == {"canAddMoreMessages": False}
    assert not info.can_add_more_messages


async def test_channels(client: DeClient, fake: FakeCxone) -> None:
    channel = ChannelCreate(
        id="chat_1",
        id_on_external_platform="site-1",
        channel_integration_id="integ-1",
        name="Web chat",
        is_live_chat=True,
        owner_user_id=4242,
    )
    fake.route = lambda request: answer(request, 200, json=json.loads(request.content))
    created = await client.create_channel(channel)
    assert fake.last_json() == {
        "id": "chat_1",
        "idOnExternalPlatform": "site-1",
        "channelIntegrationId": "integ-1",
        "realExternalPlatformId": "custom",
        "name": "Web chat",
        "isPrivate": False,
        "hasTreeStructure": False,
        "isLiveChat": True,
        "ownerUserId": 4242,
    }
    assert created.name == "Web chat"

    fake.route = lambda request: answer(request, 200, json={"data": [{"id": "a"}, {"id": "b"}]})
    assert [c.id for c in await client.list_channels()] == ["a", "b"]
    fake.route = lambda request: answer(request, 200, json=[{"id": "c"}])
    assert [c.id for c in await client.list_channels()] == ["c"]

    fake.route = lambda request: answer(request, 204)
    await client.delete_channel("chat_1")
    assert (fake.last.method, fake.last.path) == ("DELETE", "/dfo/3.0/channels/chat_1")


async def test_custom_field_definition(client: DeClient, fake: FakeCxone) -> None:
    fake.route = lambda request: answer(request, 200, json=json.loads(request.content))
    definition = CustomFieldDefinition(ident="plan", label="Plan", type="list", values=["a", "b"])
    stored = await client.put_custom_field_definition(definition)
    assert fake.last.path == "/dfo/3.0/customers/custom-field-definitions"
    assert fake.last_json() == {
        "ident": "plan",
        "label": "Plan",
        "type": "list",
        "values": ["a", "b"],
    }
    assert stored == definition


async def test_temporary_attachment_is_base64(client: DeClient, fake: FakeCxone) -> None:
    body = {"id": "att", "url": "https://x/att", "expireAt": "2026-11-24T21:00:00.000Z"}
    fake.route = lambda request: answer(request, 200, json=body)
    attachment = await client.create_temporary_attachment(b"\x00\xffpng", "image/png")
    body = fake.last_json()
    assert base64.b64decode(body["content"]) == b"\x00\xffpng"
    assert body["mimeType"] == "image/png"
    assert (attachment.id, attachment.url) == ("att", "https://x/att")


async def test_one_time_token_is_verified_without_our_bearer(
    client: DeClient, fake: FakeCxone
) -> None:
    body = {"brand": {"id": 1001}, "user": {"id": 7}, "accessToken": "user-token"}
    fake.route = lambda request: answer(request, 200, json=body)
    verified = await client.verify_one_time_token(1001, 7, "ott")
    assert "authorization" not in fake.last.headers
    assert fake.last_json() == {
        "brandId": 1001,
        "userId": 7,
        "token": "ott",
        "purpose": "channel-integration",
    }
    assert (verified.brand.id, verified.user.id, verified.access_token) == (1001, 7, "user-token")
    assert fake.token_requests == 0

    fake.route = lambda request: answer(request, 401, json=error_body("one-time token is invalid"))
    with pytest.raises(CxoneAuthError, match="one-time token is invalid"):
        await client.verify_one_time_token(1001, 7, "used")
    assert fake.token_requests == 0


async def test_ping_measures_a_light_call(client: DeClient, fake: FakeCxone) -> None:
    async def route(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0.05)
        return answer(request, 200, json={"data": []})

    fake.route = route
    seconds = await client.ping()
    assert seconds >= 0.05  # the call's own time, the server's pause included
    assert (fake.last.method, fake.last.path) == ("GET", "/dfo/3.0/channels")


async def test_discover_endpoints(http: HttpClient, fake: FakeCxone) -> None:
    body = {
        "tenantId": "tenant-guid",
        "area": "na1",
        "domain": "niceincontact.com",
        "api_endpoint": "https://api-na1.niceincontact.com",
        "auth_endpoint": "https://na1.nice-incontact.com",
        "ui_endpoint": "https://na1.nice-incontact.com",
    }
    fake.route = lambda request: answer(request, 200, json=body)
    endpoints = await discover_endpoints(http, "https://cxone.example.test/", "tenant-guid")
    assert str(fake.last.url) == (
        "https://cxone.example.test/.well-known/cxone-configuration?tenantId=tenant-guid"
    )
    assert endpoints.tenant_id == "tenant-guid"
    assert endpoints.de_api_url == "https://api-de-na1.niceincontact.com/dfo/3.0"
    assert endpoints.token_url == "https://na1.nice-incontact.com/auth/token"


def test_iso_millis() -> None:
    assert iso_millis(datetime(2026, 11, 24, 20, 6, 2, 123999, UTC)) == "2026-11-24T20:06:02.123Z"
    assert iso_millis(datetime(2026, 11, 24, 20, 6, 2)) == "2026-11-24T20:06:02.000Z"


# --- 401: one refresh, one retry ------------------------------------------------------------


async def test_401_refreshes_the_token_once_and_retries(
    client: DeClient, fake: FakeCxone, tokens: TokenManager
) -> None:
    def route(request: HttpRequest) -> HttpResponse:
        if request.headers["authorization"] == "Bearer tok-1":
            return answer(request, 401, json=error_body("invalid or expired token"))
        return answer(request, 200, json=CONTACT)

    fake.route = route
    contact = await client.get_contact("c-1")
    assert contact.id == "c-1"
    assert [r.headers["authorization"] for r in fake.de_requests] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    assert tokens.refreshes == 2


async def test_still_401_after_refresh_is_an_auth_error(client: DeClient, fake: FakeCxone) -> None:
    fake.route = lambda request: answer(request, 401, json=error_body("invalid or expired token"))
    with pytest.raises(CxoneAuthError) as caught:
        await client.get_contact("c-1")
    assert str(caught.value) == "GET /dfo/3.0/contacts/c-1 answered 401: invalid or expired token"
    assert len(fake.de_requests) == 2
    assert fake.token_requests == 2


# --- error mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, CxoneRejected),
        (403, CxoneRejected),
        (404, CxoneNotFound),
        (409, CxoneConflict),
        (422, CxoneRejected),
        (429, CxoneUnavailable),
        (500, CxoneUnavailable),
        (502, CxoneUnavailable),
        (503, CxoneUnavailable),
    ],
)
async def test_status_maps_to_the_hierarchy(
    client: DeClient, fake: FakeCxone, status: int, kind: type[CxoneError]
) -> None:
    body = error_body("is required", field="thread.idOnExternalPlatform")
    fake.route = lambda request: answer(request, status, json=body)

    with pytest.raises(kind) as caught:
        await client.create_message("ch", a_message())

    error = caught.value
    assert type(error) is kind
    assert error.status == status
    assert error.uid == "uid-123"
    assert error.errors == body["errors"]
    assert str(error) == (
        f"POST /dfo/3.0/channels/ch/messages answered {status}: "
        "thread.idOnExternalPlatform: is required"
    )
    assert len(fake.de_requests) == 1  # the client itself never retries


async def test_error_without_cxone_body_uses_the_reason_phrase(
    client: DeClient, fake: FakeCxone
) -> None:
    fake.route = lambda request: answer(request, 502, content=b"<html>bad gateway</html>")
    with pytest.raises(CxoneUnavailable) as caught:
        await client.list_channels()
    assert str(caught.value) == "GET /dfo/3.0/channels answered 502: Bad Gateway"
    assert caught.value.errors == []
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("1.5", 1.5), ("-4", 0.0), ("soon", None)],
)
async def test_retry_after_seconds(
    client: DeClient, fake: FakeCxone, header: str, expected: float | None
) -> None:
    fake.route = lambda request: answer(request, 429, headers={"Retry-After": header})
    with pytest.raises(CxoneUnavailable) as caught:
        await client.list_channels()
    assert caught.value.retry_after == expected


async def test_retry_after_http_date(client: DeClient, fake: FakeCxone) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    header = format_datetime(when, usegmt=True)
    fake.route = lambda request: answer(request, 503, headers={"Retry-After": header})
    with pytest.raises(CxoneUnavailable) as caught:
        await client.list_channels()
    assert caught.value.retry_after is not None
    assert 115 <= caught.value.retry_after <= 120


@pytest.mark.parametrize(
    "exc",
    [
        HttpTransportError("ClientConnectorError: refused"),
        HttpTimeout("read timed out"),
        HttpTransportError("ServerDisconnectedError: server disconnected"),
    ],
)
async def test_transport_errors_are_unavailable(
    client: DeClient, fake: FakeCxone, exc: Exception
) -> None:
    def route(request: HttpRequest) -> HttpResponse:
        raise exc

    fake.route = route
    with pytest.raises(CxoneUnavailable) as caught:
        await client.get_contact("c-1")
    assert caught.value.__cause__ is exc
    assert caught.value.status is None
    assert str(caught.value).startswith("GET /dfo/3.0/contacts/c-1 ")


async def test_a_hanging_server_is_unavailable_within_the_timeout(
    client: DeClient, fake: FakeCxone
) -> None:
    async def route(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(30)  # far past the client's time limit: only that can end the call
        return answer(request, 200, json=CONTACT)

    fake.route = route
    with pytest.raises(CxoneUnavailable, match="timed out"):
        await client.get_contact("c-1")


async def test_unreadable_success_body_is_a_plain_cxone_error(
    client: DeClient, fake: FakeCxone
) -> None:
    fake.route = lambda request: answer(request, 200, json={"consumerContact": {"id": "c"}})
    with pytest.raises(CxoneError, match="consumerContact") as caught:
        await client.create_message("ch", a_message())
    assert type(caught.value) is CxoneError
    assert caught.value.status == 200

    fake.route = lambda request: answer(request, 200, json={"data": "nope"})
    with pytest.raises(CxoneError, match="without a list"):
        await client.list_channels()
