"""The platform API (v1): how any external platform posts customer activity into a channel.

Every request is signed with the channel's platform-request key (see `byoc.channels.signing`).
A customer message is stored once: a repeated `id` is answered as a duplicate, and so is a
message without `id` whose signed request comes again (a replay inside the tolerance window,
or a platform's retry of the very same request), recognised by its signature.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from byoc.api.deps import (
    ConversationsDep,
    DatabaseDep,
    SettingsDep,
    conversations_of,
    settings_of,
)
from byoc.api.lean import documented_body, json_response, parse_body
from byoc.channels.adapter import message_view
from byoc.channels.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    VERSION,
    request_target,
    verify,
)
from byoc.conversations.models import MAX_SEQ, CustomerMessageIn, CustomerProfile
from byoc.conversations.rich import MAX_POSTBACK
from byoc.errors import ConversationNotFound
from byoc.store import Connection, conversations, messages
from byoc.store.records import Channel, Conversation, Message

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/channels/{channel_id}", tags=["Platform API v1"])

MAX_TEXT = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CustomFieldIn(_Strict):
    ident: str = Field(min_length=1, max_length=100)
    value: str = Field(max_length=1000)


class CustomerIn(_Strict):
    id: str = Field(min_length=1, max_length=200, description="The platform's own user id.")
    first_name: str | None = Field(default=None, alias="firstName", max_length=200)
    last_name: str | None = Field(default=None, alias="lastName", max_length=200)
    nickname: str | None = Field(default=None, max_length=200)
    image: str | None = Field(default=None, max_length=2000)
    custom_fields: list[CustomFieldIn] | None = Field(default=None, alias="customFields")


class AttachmentIn(_Strict):
    friendly_name: str = Field(alias="friendlyName", min_length=1, max_length=300)
    url: str = Field(pattern=r"^https?://", max_length=4000)


class CustomerMessageBody(_Strict):
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The platform's id for this message; a repeated id is answered, not re-sent.",
    )
    customer: CustomerIn
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    postback: str | None = Field(
        default=None,
        max_length=MAX_POSTBACK,
        description="The postback of the button or list item the customer chose; `text` is "
        "its label (docs/rich-messages.md).",
    )
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=10)
    thread_id: str | None = Field(
        default=None,
        alias="threadId",
        description="Continue this thread; omit to continue the open one or start a new one.",
    )


class AcceptedMessage(BaseModel):
    id: str
    threadId: str
    customerId: str
    seq: int
    status: str
    duplicate: bool


class TypingBody(_Strict):
    thread_id: str = Field(alias="threadId")
    typing: bool


class ReceiptBody(_Strict):
    message_id: str = Field(alias="messageId")
    status: Literal["delivered", "seen"]


class Accepted(BaseModel):
    accepted: bool = True


class Transcript(BaseModel):
    threadId: str
    state: str
    messages: list[dict[str, Any]]


# The platform message id given to a message whose request carries none.
SIGNED_REQUEST_ID_PREFIX = "signed-request:"


async def _verified(
    channel_id: str, request: Request, service: ConversationsDep, settings: SettingsDep
) -> tuple[Channel, str]:
    channel = await service.channel(channel_id)
    scope = request.scope
    path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]  # as sent
    signature = verify(
        channel.secret,
        request.headers.get(TIMESTAMP_HEADER),
        request.headers.get(SIGNATURE_HEADER),
        await request.body(),
        target=request_target(request.method, path, scope["query_string"].decode("latin-1")),
        # A POST's body names the thread, message or customer it acts on: v2 covers that.
        body_names_target=request.method == "POST" or settings.signature_v2_everywhere,
        tolerance_seconds=settings.signature_tolerance_seconds,
    )
    if request.method != "POST" and signature.startswith(VERSION + "="):
        log.warning(
            "channel %s signed %s %s body-only (v2): sign it as v3 before "
            "BYOC_SIGNATURE_V2_EVERYWHERE is turned off",
            channel.id,
            request.method,
            scope["path"],
        )
    return channel, signature


async def signed_channel(
    channel_id: str, request: Request, service: ConversationsDep, settings: SettingsDep
) -> Channel:
    channel, _ = await _verified(channel_id, request, service, settings)
    return channel


SignedChannel = Annotated[Channel, Depends(signed_channel)]


@router.post(
    "/messages",
    status_code=202,
    response_model=AcceptedMessage,
    openapi_extra=documented_body(CustomerMessageBody),
)
async def post_customer_message(channel_id: str, request: Request) -> Response:
    """Store a customer message durably and queue it for CXone; 202 once it is stored."""
    # The busiest route of the platform API: lean (see `byoc.api.lean`).
    service = conversations_of(request)
    channel, signature = await _verified(channel_id, request, service, settings_of(request))
    body = parse_body(
        CustomerMessageBody, await request.body(), request.headers.get("content-type")
    )
    profile = CustomerProfile(
        external_id=body.customer.id,
        first_name=body.customer.first_name,
        last_name=body.customer.last_name,
        nickname=body.customer.nickname,
        image=body.customer.image,
        custom_fields=[f.model_dump() for f in body.customer.custom_fields]
        if body.customer.custom_fields
        else None,
    )
    delivered = await service.receive_customer_message(
        CustomerMessageIn(
            channel_id=channel.id,
            customer=profile,
            text=body.text,
            attachments=[a.model_dump(by_alias=True) for a in body.attachments],
            platform_message_id=body.id or SIGNED_REQUEST_ID_PREFIX + signature,
            thread_id=body.thread_id,
            postback=body.postback,
        )
    )
    accepted = AcceptedMessage(
        id=delivered.message.id,
        threadId=delivered.conversation.id,
        customerId=delivered.customer.id,
        seq=delivered.message.seq,
        status=delivered.message.status,
        duplicate=delivered.duplicate,
    )
    return json_response(accepted, 202)


@router.post("/typing", status_code=202, response_model=Accepted)
async def post_typing(
    body: TypingBody, channel: SignedChannel, service: ConversationsDep
) -> Accepted:
    await service.customer_typing(channel.id, body.thread_id, typing=body.typing)
    return Accepted()


@router.post("/receipts", status_code=202, response_model=Accepted)
async def post_receipt(
    body: ReceiptBody, channel: SignedChannel, service: ConversationsDep
) -> Accepted:
    # The platform speaks for every customer of its channel: any agent message of it is its own.
    await service.report_receipt(channel.id, body.message_id, body.status, customer_id=None)
    return Accepted()


class OptOutBody(_Strict):
    opted_out: bool = Field(alias="optedOut")


@router.put("/customers/{customer_id}/opt-out", response_model=Accepted)
async def put_opt_out(
    customer_id: str, body: OptOutBody, channel: SignedChannel, service: ConversationsDep
) -> Accepted:
    """A customer who opted out is refused as the recipient of agent-initiated messages."""
    await service.set_opt_out(channel.id, customer_id, body.opted_out)
    return Accepted()


@router.get("/threads/{thread_id}/messages", response_model=Transcript)
async def get_transcript(
    thread_id: str,
    channel: SignedChannel,
    db: DatabaseDep,
    after_seq: Annotated[int, Query(ge=-1, le=MAX_SEQ)] = -1,
) -> Transcript:
    def read(conn: Connection) -> tuple[Conversation | None, list[Message]]:
        conversation = conversations.get_conversation(conn, thread_id)
        if conversation is None or conversation.channel_id != channel.id:
            return None, []
        return conversation, messages.list_messages(conn, thread_id, after_seq=after_seq)

    conversation, transcript = await db.run_read(read)
    if conversation is None:
        raise ConversationNotFound(f"no thread {thread_id!r} in channel {channel.id!r}")
    return Transcript(
        threadId=conversation.id,
        state=conversation.state,
        messages=[message_view(m) for m in transcript],
    )
