"""The DE API's request and response bodies (contract §3), as pydantic models.

Python names are snake_case; the wire is camelCase. Build requests with either spelling and
send them with `to_wire()` (by alias, without the fields left at None). Responses keep fields
we do not model (`extra="allow"`), because CXone adds fields over time and a stricter reading
would turn a harmless addition into an outage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ContactStatus = Literal["new", "open", "pending", "escalated", "resolved", "closed", "trashed"]

# A contact (case) in one of these states has been ended by an agent or by DE: the customer
# must not be able to add to it any more (contract §3.6).
ENDED_CONTACT_STATUSES: frozenset[str] = frozenset({"closed", "resolved", "trashed"})


def iso_millis(dt: datetime) -> str:
    """`dt` as DE's `createdAtWithMilliseconds`, e.g. `2026-11-24T20:06:02.123Z`.

    A naive `dt` is taken to be UTC.
    """
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    utc = dt.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class WireModel(BaseModel):
    """Base of every DE body: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        # DE ids arrive as numbers in some tenants and strings in others; we keep strings.
        coerce_numbers_to_str=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON body for a request: camelCase, without fields left at None."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- Pieces of a message --------------------------------------------------------------------


class TextPayload(WireModel):
    text: str


class MessageContent(WireModel):
    type: str = "TEXT"
    # TEXT carries `{"text"}`; other types (PLUGIN, QUICK_REPLIES, ...) carry their own shape.
    payload: TextPayload | dict[str, Any]

    @classmethod
    def of_text(cls, text: str) -> MessageContent:
        return cls(type="TEXT", payload=TextPayload(text=text))

    @property
    def text(self) -> str | None:
        if isinstance(self.payload, TextPayload):
            return self.payload.text
        value = self.payload.get("text")
        return value if isinstance(value, str) else None


class ThreadRef(WireModel):
    id_on_external_platform: str
    thread_name: str | None = None


class CustomFieldValue(WireModel):
    ident: str
    value: str


class EndUserIdentity(WireModel):
    id_on_external_platform: str
    first_name: str | None = None
    last_name: str | None = None
    nickname: str | None = None
    image: str | None = None
    custom_fields: list[CustomFieldValue] | None = None


class Attachment(WireModel):
    friendly_name: str
    url: str


class ContactOptions(WireModel):
    custom_fields: list[CustomFieldValue] | None = None
    skill_id: int | None = None
    status: str | None = None


class MessageRef(WireModel):
    id_on_external_platform: str


class ExternalAttribute(WireModel):
    key: str
    value: str


class Recipient(WireModel):
    id_on_external_platform: str
    name: str | None = None
    is_primary: bool | None = None
    is_private: bool | None = None


# --- Messages -------------------------------------------------------------------------------


class CreateMessage(WireModel):
    """`POST /channels/{channelId}/messages`: one customer message (contract §3.2)."""

    id_on_external_platform: str
    thread: ThreadRef
    message_content: MessageContent
    author_end_user_identity: EndUserIdentity
    created_at_with_milliseconds: str
    direction: str = "inbound"
    attachments: list[Attachment] | None = None
    contact: ContactOptions | None = None
    reply_to_message: MessageRef | None = None
    browser_fingerprint: dict[str, Any] | None = None
    external_attributes: list[ExternalAttribute] | None = None
    recipients: list[Recipient] | None = None


class OutboundMessage(WireModel):
    """`POST /channels/{channelId}/outbound`: a message the middleware sends (contract §3.5)."""

    thread: ThreadRef
    message_content: MessageContent
    recipients: list[Recipient]
    id_on_external_platform: str | None = None


class Contact(WireModel):
    """A DE contact (case): what an agent accepts and ends."""

    id: str
    status: str
    thread_id: str | None = None
    thread_id_on_external_platform: str | None = None
    channel_id: str | None = None
    end_user_id_on_external_platform: str | None = None
    created_at: str | None = None
    status_updated_at: str | None = None

    @property
    def is_ended(self) -> bool:
        return self.status in ENDED_CONTACT_STATUSES


class MessageDetail(WireModel):
    id: str
    id_on_external_platform: str | None = None
    thread_id: str | None = None
    direction: str | None = None
    created_at: str | None = None


class CreateMessageResponse(WireModel):
    consumer_contact: Contact
    message: MessageDetail


# --- Threads, channels, customers, attachments ----------------------------------------------


class ThreadInfo(WireModel):
    id: str
    id_on_external_platform: str
    channel_id: str
    can_add_more_messages: bool


class ChannelCreate(WireModel):
    """`POST /channels`: create or update a channel (contract §3.7)."""

    id: str
    id_on_external_platform: str
    channel_integration_id: str
    name: str
    real_external_platform_id: str = "custom"
    is_private: bool = False
    has_tree_structure: bool = False
    is_live_chat: bool | None = None
    has_outbound_flow: bool | None = None
    has_manual_outbound_flow: bool | None = None
    has_ability_to_send_files: bool | None = None
    can_send_sender_actions: bool | None = None
    owner_user_id: int | None = None


class Channel(WireModel):
    id: str
    id_on_external_platform: str | None = None
    channel_integration_id: str | None = None
    real_external_platform_id: str | None = None
    name: str | None = None
    is_private: bool | None = None
    has_tree_structure: bool | None = None
    is_live_chat: bool | None = None
    has_outbound_flow: bool | None = None
    has_manual_outbound_flow: bool | None = None
    has_ability_to_send_files: bool | None = None
    owner_user_id: int | None = None


class CustomFieldDefinition(WireModel):
    """`PUT /customers/custom-field-definitions`: a customer custom field."""

    ident: str
    label: str
    type: str = "text"  # "text" | "email" | "list"
    is_required: bool | None = None
    is_editable: bool | None = None
    values: list[Any] | None = None


class TemporaryAttachment(WireModel):
    id: str
    url: str
    expire_at: str | None = None


class Brand(WireModel):
    id: int
    tenant_id: str | None = None
    business_unit_id: int | None = None


class User(WireModel):
    id: int
    first_name: str | None = None
    surname: str | None = None


class OneTimeTokenVerification(WireModel):
    """The answer to `POST /one-time-token/verification` (contract §2.6)."""

    brand: Brand
    user: User
    access_token: str


class CxoneEndpoints(BaseModel):
    """A tenant's endpoints from `/.well-known/cxone-configuration`.

    This document mixes snake_case (`api_endpoint`) and camelCase (`tenantId`) keys, so it
    does not use the camelCase alias generator.
    """

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    api_endpoint: str
    auth_endpoint: str
    token_endpoint: str | None = None
    area: str | None = None
    domain: str | None = None
    tenant_id: str | None = Field(default=None, alias="tenantId")
    de_api_base: str | None = None

    @property
    def de_api_url(self) -> str:
        """The DE API base including `/dfo/3.0`, for `DeClient(api_url=...)`."""
        if self.de_api_base:
            return self.de_api_base.rstrip("/")
        if self.area and self.domain:
            return f"https://api-de-{self.area}.{self.domain}/dfo/3.0"
        return self.api_endpoint.rstrip("/") + "/dfo/3.0"

    @property
    def token_url(self) -> str:
        """Where to ask for a token (contract §3.1)."""
        return self.token_endpoint or self.auth_endpoint.rstrip("/") + "/auth/token"
