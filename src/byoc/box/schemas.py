"""Bodies CXone sends to the box. Lenient by design: CXone adds fields without notice, and
the contract marks several bodies unknown, so unknown fields are kept, not refused."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from byoc.json_leaves import leaves


class _Lenient(BaseModel):
    # DE ids arrive as numbers in some tenants and strings in others: kept as strings.
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


class Brand(_Lenient):
    id: int | str | None = None
    tenant_id: str | None = Field(default=None, alias="tenantId")
    business_unit_id: int | str | None = Field(default=None, alias="businessUnitId")


class ThreadIn(_Lenient):
    id: str | None = None
    id_on_external_platform: str | None = Field(default=None, alias="idOnExternalPlatform")


class MessageContentIn(_Lenient):
    type: str = "TEXT"
    payload: dict[str, Any] = Field(default_factory=dict)


class AttachmentIn(_Lenient):
    friendly_name: str | None = Field(default=None, alias="friendlyName", max_length=300)
    # Handed on to the platform when it is not kept here: http(s) only, as a platform's own.
    url: str = Field(pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/\s]", max_length=4000)


class MessageRefIn(_Lenient):
    id: str | None = None


class AgentMessageBody(_Lenient):
    brand: Brand | None = None
    thread: ThreadIn | None = None
    message: MessageRefIn | None = None
    id: str | None = None
    message_id: str | None = Field(default=None, alias="messageId")
    message_content: MessageContentIn | None = Field(default=None, alias="messageContent")
    attachments: list[AttachmentIn] = Field(default_factory=list)
    end_user_recipients: list[dict[str, Any]] = Field(
        default_factory=list, alias="endUserRecipients"
    )
    recipients: list[dict[str, Any]] = Field(default_factory=list)
    author_user: dict[str, Any] | None = Field(default=None, alias="authorUser")

    @model_validator(mode="after")
    def _finite_numbers_only(self) -> AgentMessageBody:
        """A literal too large for a double parses as infinity, which would go out again as
        bare `Infinity` in what is stored and handed on (the message's content and its
        attachments; the author is cut to its strings): no browser or strict platform reads
        the document holding it. The text guard refuses the words NaN and Infinity."""
        content = self.message_content
        parts: list[Any] = [a.model_extra for a in self.attachments if a.model_extra]
        if content is not None:
            parts += [content.payload, content.model_extra]
        if parts and not_finite(parts):
            raise ValueError("holds a number too large for a double")
        return self

    @property
    def de_message_id(self) -> str | None:
        if self.message is not None and self.message.id:
            return self.message.id
        return self.message_id or self.id


class SenderAction(_Lenient):
    action: str


class SenderActionBody(_Lenient):
    brand: Brand | None = None
    sender_action: SenderAction = Field(alias="senderAction")
    author_user: dict[str, Any] | None = Field(default=None, alias="authorUser")


class RecipientValidationBody(_Lenient):
    brand: Brand | None = None
    end_user_recipients: list[dict[str, Any]] = Field(
        default_factory=list, alias="endUserRecipients"
    )
    recipients: list[dict[str, Any]] = Field(default_factory=list)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


class LegacyReplyResponse(BaseModel):
    idOnExternalPlatform: str


class OutboundMessageOut(BaseModel):
    idOnExternalPlatform: str
    createdAtWithMilliseconds: str
    url: str | None = None


class ThreadOut(BaseModel):
    idOnExternalPlatform: str


class IdentityOut(BaseModel):
    idOnExternalPlatform: str
    firstName: str | None = None
    lastName: str | None = None
    nickname: str | None = None


class OutboundResponse(BaseModel):
    message: OutboundMessageOut
    thread: ThreadOut
    endUserIdentities: list[IdentityOut]
    recipients: list[IdentityOut]


def not_finite(value: Any) -> bool:
    """Whether `value` (parsed JSON) holds a float that is infinite or NaN anywhere."""
    return any(isinstance(leaf, float) and not math.isfinite(leaf) for leaf in leaves(value))
