"""DeClient and TokenManager against the real CXone emulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from byoc.cxone import (
    ChannelCreate,
    CreateMessage,
    CustomFieldDefinition,
    CxoneAuthError,
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
from byoc.http import HttpClient
from cxone_emulator.config import ChannelConfig, EmulatorConfig, IntegrationConfig
from tests.support.emulator import Emulator, running_emulator

CHANNEL = "chat_test"
INTEGRATION = "integ-1"


def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        integrations=[
            IntegrationConfig(
                id=INTEGRATION,
                # Nothing here calls the box; the client under test only talks to DE.
                box_url="http://127.0.0.1:9/integration/box",
                authorization_url="http://127.0.0.1:9/integration/box/1.0/token",
                client_id="box-client",
                client_secret="box-secret",
                reply_style="dfo3",
            )
        ],
        channels=[ChannelConfig(id=CHANNEL, integration_id=INTEGRATION)],
    )


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with running_emulator(emulator_config()) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient() as client:
        yield client


def token_manager(
    http: HttpClient,
    emu: Emulator,
    *,
    access_key_secret: str | None = None,
    client_secret: str | None = None,
) -> TokenManager:
    config = emu.config
    return TokenManager(
        http,
        emu.url + "/auth/token",
        config.access_key_id,
        access_key_secret or config.access_key_secret,
        config.client_id,
        client_secret or config.client_secret,
    )


@pytest.fixture
def tokens(http: HttpClient, emu: Emulator) -> TokenManager:
    return token_manager(http, emu)


@pytest.fixture
def client(http: HttpClient, emu: Emulator, tokens: TokenManager) -> DeClient:
    return DeClient(http, emu.api_url, tokens, timeout=2.0)


def customer_message(
    external_id: str, thread: str = "thread-1", customer: str = "cust-1", **fields: Any
) -> CreateMessage:
    values: dict[str, Any] = {
        "id_on_external_platform": external_id,
        "thread": ThreadRef(id_on_external_platform=thread, thread_name="Web chat"),
        "message_content": MessageContent.of_text(f"text of {external_id}"),
        "author_end_user_identity": EndUserIdentity(
            id_on_external_platform=customer, first_name="Ada", last_name="Lovelace"
        ),
        "created_at_with_milliseconds": iso_millis(datetime.now(UTC)),
        **fields,
    }
    return CreateMessage(**values)


def set_faults(emu: Emulator, *rules: dict[str, Any], **extra: Any) -> None:
    response = emu.admin.put("/emulator/faults", json={"seed": 1, "rules": list(rules), **extra})
    response.raise_for_status()


# --- messages and contacts --------------------------------------------------------------------


async def test_create_message_and_read_the_contact_back(client: DeClient, emu: Emulator) -> None:
    created = await client.create_message(CHANNEL, customer_message("msg-1"))

    assert created.message.id_on_external_platform == "msg-1"
    contact = await client.get_contact(created.consumer_contact.id)
    assert contact.id == created.consumer_contact.id
    assert contact.status == "new"
    assert contact.thread_id_on_external_platform == "thread-1"
    assert contact.channel_id == CHANNEL
    assert not contact.is_ended

    (logged,) = emu.requests(path_contains="/messages", method="POST")
    assert logged["status"] == 200
    assert logged["requestBody"]["messageContent"] == {
        "type": "TEXT",
        "payload": {"text": "text of msg-1"},
    }

    # The same message id again is answered with the original, not a second message.
    again = await client.create_message(CHANNEL, customer_message("msg-1"))
    assert again.consumer_contact.id == contact.id
    assert again.message.id == created.message.id


async def test_list_contacts_filters(client: DeClient) -> None:
    first = await client.create_message(CHANNEL, customer_message("m1", "t1", "cust-1"))
    second = await client.create_message(CHANNEL, customer_message("m2", "t2", "cust-2"))

    everyone = await client.list_contacts(channel_ids=[CHANNEL])
    assert {c.id for c in everyone} == {first.consumer_contact.id, second.consumer_contact.id}
    only_two = await client.list_contacts(end_user_ids=["cust-2"])
    assert [c.id for c in only_two] == [second.consumer_contact.id]
    assert await client.list_contacts(channel_ids=["no-such-channel"]) == []


async def test_set_contact_status_and_abandon(client: DeClient) -> None:
    first = await client.create_message(CHANNEL, customer_message("m1", "t1"))
    second = await client.create_message(CHANNEL, customer_message("m2", "t2"))

    closed = await client.set_contact_status(first.consumer_contact.id, "closed")
    assert closed.status == "closed"
    assert closed.is_ended
    ended = await client.list_contacts(statuses=["closed"])
    assert [c.id for c in ended] == [first.consumer_contact.id]

    abandoned = await client.abandon_contact(second.consumer_contact.id, "expired")
    assert abandoned.is_ended
    assert abandoned.model_extra is not None
    assert abandoned.model_extra.get("abandonType") == "expired"

    with pytest.raises(CxoneNotFound):
        await client.get_contact("no-such-contact")


async def test_sender_action_reaches_the_agent(client: DeClient, emu: Emulator) -> None:
    created = await client.create_message(CHANNEL, customer_message("m1"))

    await client.sender_action(CHANNEL, "thread-1", "isTypingOn")
    seen = emu.admin.get(f"/emulator/contacts/{created.consumer_contact.id}").json()
    assert seen["customerTyping"] is True
    await client.sender_action(CHANNEL, "thread-1", "isTypingOff")
    seen = emu.admin.get(f"/emulator/contacts/{created.consumer_contact.id}").json()
    assert seen["customerTyping"] is False


async def test_outbound_then_delivery_status(client: DeClient, emu: Emulator) -> None:
    outbound = OutboundMessage(
        thread=ThreadRef(id_on_external_platform="thread-out"),
        message_content=MessageContent.of_text("Your order shipped"),
        recipients=[Recipient(id_on_external_platform="cust-9", name="Grace")],
        id_on_external_platform="out-1",
    )
    created = await client.send_outbound(CHANNEL, outbound)
    assert created.consumer_contact.thread_id_on_external_platform == "thread-out"
    assert created.message.id_on_external_platform == "out-1"

    await client.update_message_status(CHANNEL, "out-1", "delivered")
    await client.update_message_status(CHANNEL, "out-1", "failed", reason="blocked by user")
    seen = emu.admin.get(f"/emulator/contacts/{created.consumer_contact.id}").json()
    (message,) = seen["messages"]
    assert message["status"] == "failed"
    assert message["statusReason"] == "blocked by user"

    with pytest.raises(CxoneNotFound):
        await client.update_message_status(CHANNEL, "never-sent", "seen")


# --- threads and channels ---------------------------------------------------------------------


async def test_thread_get_and_close(client: DeClient) -> None:
    await client.create_message(CHANNEL, customer_message("m1"))

    thread = await client.get_thread(CHANNEL, "thread-1")
    assert thread.id_on_external_platform == "thread-1"
    assert thread.channel_id == CHANNEL
    assert thread.can_add_more_messages

    closed = await client.update_thread(CHANNEL, "thread-1", can_add_more_messages=False)
    assert not closed.can_add_more_messages
    with pytest.raises(CxoneRejected) as caught:
        await client.create_message(CHANNEL, customer_message("m2"))
    assert "thread.idOnExternalPlatform" in str(caught.value)

    with pytest.raises(CxoneNotFound):
        await client.get_thread(CHANNEL, "no-such-thread")


async def test_thread_search_reads_can_add_more_messages(client: DeClient) -> None:
    await client.create_message(CHANNEL, customer_message("m1"))
    (found,) = await client.list_threads(
        channel_id=CHANNEL, thread_id_on_external_platform="thread-1"
    )
    assert found.id_on_external_platform == "thread-1"
    assert found.can_add_more_messages
    await client.update_thread(CHANNEL, "thread-1", can_add_more_messages=False)
    (closed,) = await client.list_threads(channel_id=CHANNEL)
    assert not closed.can_add_more_messages
    assert (
        await client.list_threads(channel_id=CHANNEL, thread_id_on_external_platform="nope") == []
    )


async def test_channels_create_list_delete(client: DeClient) -> None:
    channel = ChannelCreate(
        id="chat_new",
        id_on_external_platform="site-42",
        channel_integration_id=INTEGRATION,
        name="Support chat",
        is_live_chat=True,
        has_outbound_flow=True,
        owner_user_id=4242,
    )
    created = await client.create_channel(channel)
    assert created.id == "chat_new"
    assert created.name == "Support chat"
    assert created.owner_user_id == 4242

    listed = {c.id: c for c in await client.list_channels()}
    assert set(listed) == {CHANNEL, "chat_new"}
    assert listed["chat_new"].is_live_chat

    await client.delete_channel("chat_new")
    assert [c.id for c in await client.list_channels()] == [CHANNEL]
    with pytest.raises(CxoneNotFound):
        await client.create_message("chat_new", customer_message("m1"))
    with pytest.raises(CxoneNotFound):
        await client.delete_channel("chat_new")


async def test_channel_with_unknown_integration_is_not_found(client: DeClient) -> None:
    channel = ChannelCreate(
        id="x", id_on_external_platform="x", channel_integration_id="nope", name="X"
    )
    with pytest.raises(CxoneNotFound, match="channelIntegrationId"):
        await client.create_channel(channel)


# --- custom fields, attachments, one-time tokens, discovery -----------------------------------


async def test_custom_field_definition(client: DeClient) -> None:
    definition = CustomFieldDefinition(
        ident="plan", label="Plan", type="list", is_required=True, values=["free", "pro"]
    )
    stored = await client.put_custom_field_definition(definition)
    assert (stored.ident, stored.label, stored.type) == ("plan", "Plan", "list")
    assert stored.is_required is True
    assert stored.values == ["free", "pro"]

    with pytest.raises(CxoneRejected, match="values"):
        await client.put_custom_field_definition(
            CustomFieldDefinition(ident="tier", label="Tier", type="list")
        )


async def test_temporary_attachment_can_be_fetched(client: DeClient, http: HttpClient) -> None:
    content = b"\x89PNG\r\n\x1a\n fake image"
    attachment = await client.create_temporary_attachment(content, "image/png")
    assert attachment.expire_at

    response = await http.request("GET", attachment.url, timeout=2.0)
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "image/png"


async def test_one_time_token_verification(client: DeClient, emu: Emulator) -> None:
    minted = emu.admin.post("/emulator/one-time-tokens", json={}).json()

    verified = await client.verify_one_time_token(
        minted["brandId"], minted["userId"], minted["token"]
    )
    assert verified.brand.id == emu.config.brand_id
    assert verified.brand.tenant_id == emu.config.tenant_id
    assert verified.user.id == minted["userId"]
    assert verified.access_token

    with pytest.raises(CxoneAuthError, match="one-time token"):
        await client.verify_one_time_token(minted["brandId"], minted["userId"], minted["token"])
    assert client.tokens.refreshes == 0


async def test_discovery_leads_to_a_working_client(http: HttpClient, emu: Emulator) -> None:
    endpoints = await discover_endpoints(http, emu.url, emu.config.tenant_id)
    assert endpoints.tenant_id == emu.config.tenant_id
    assert endpoints.area == emu.config.area
    assert endpoints.de_api_url == emu.api_url
    assert endpoints.token_url == emu.url + "/auth/token"

    config = emu.config
    tokens = TokenManager(
        http,
        endpoints.token_url,
        config.access_key_id,
        config.access_key_secret,
        config.client_id,
        config.client_secret,
    )
    client = DeClient(http, endpoints.de_api_url, tokens)
    assert await client.ping() >= 0

    with pytest.raises(CxoneNotFound, match="tenantId"):
        await discover_endpoints(http, emu.url, "00000000-0000-0000-0000-000000000000")


# --- tokens -----------------------------------------------------------------------------------


async def test_expired_token_is_refreshed_once(client: DeClient, emu: Emulator) -> None:
    await client.list_channels()
    assert client.tokens.refreshes == 1

    emu.admin.put("/emulator/tokens/expire").raise_for_status()
    created = await client.create_message(CHANNEL, customer_message("after-expiry"))

    assert created.message.id_on_external_platform == "after-expiry"
    assert client.tokens.refreshes == 2
    statuses = [entry["status"] for entry in emu.requests(path_contains="/messages")]
    assert statuses == [401, 200]


async def test_wrong_access_key_is_an_auth_error(http: HttpClient, emu: Emulator) -> None:
    tokens = token_manager(http, emu, access_key_secret="wrong")
    client = DeClient(http, emu.api_url, tokens)
    with pytest.raises(CxoneAuthError, match="400") as caught:
        await client.list_channels()
    assert caught.value.status == 400

    tokens = token_manager(http, emu, client_secret="wrong")
    with pytest.raises(CxoneAuthError, match="401"):
        await tokens.get()


# --- faults -----------------------------------------------------------------------------------


async def test_503_is_unavailable_and_changes_nothing(client: DeClient, emu: Emulator) -> None:
    set_faults(emu, {"match": "POST /channels/*/messages", "errorRate": 1, "times": 1})

    with pytest.raises(CxoneUnavailable) as caught:
        await client.create_message(CHANNEL, customer_message("m1"))
    assert caught.value.status == 503
    assert await client.list_contacts() == []

    # The fault was for one request only: sending the same message again succeeds.
    created = await client.create_message(CHANNEL, customer_message("m1"))
    assert created.message.id_on_external_platform == "m1"


async def test_429_carries_retry_after(client: DeClient, emu: Emulator) -> None:
    set_faults(
        emu, {"match": "POST /channels/*/messages", "rateLimitRate": 1, "retryAfterSeconds": 7}
    )
    with pytest.raises(CxoneUnavailable) as caught:
        await client.create_message(CHANNEL, customer_message("m1"))
    assert caught.value.status == 429
    assert caught.value.retry_after == 7


async def test_hanging_server_is_unavailable_within_the_timeout(
    http: HttpClient, emu: Emulator, tokens: TokenManager
) -> None:
    client = DeClient(http, emu.api_url, tokens, timeout=0.5)
    await tokens.get()
    set_faults(emu, {"match": "POST /channels/*/messages", "hangSeconds": 10})

    # The emulator hangs for 10 s and answers then: a timeout is the client's 0.5 s limit.
    with pytest.raises(CxoneUnavailable, match="timed out"):
        await client.create_message(CHANNEL, customer_message("m1"))
    emu.admin.delete("/emulator/faults").raise_for_status()


async def test_outage_is_unavailable(client: DeClient, emu: Emulator) -> None:
    await client.tokens.get()
    set_faults(emu, outageSeconds=30)
    with pytest.raises(CxoneUnavailable):
        await client.ping()
    emu.admin.delete("/emulator/faults").raise_for_status()
    assert await client.ping() >= 0


async def test_validation_error_names_the_field(client: DeClient) -> None:
    with pytest.raises(CxoneRejected) as caught:
        await client.create_message(
            CHANNEL, customer_message("m1", created_at_with_milliseconds="yesterday")
        )
    assert type(caught.value) is CxoneRejected
    assert caught.value.status == 400
    assert "createdAtWithMilliseconds" in str(caught.value)
    assert caught.value.errors[0]["field"] == "createdAtWithMilliseconds"
