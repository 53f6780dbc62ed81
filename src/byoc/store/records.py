"""Rows as typed values. Repositories return these, never driver rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads_or_none(value: str | None) -> Any:
    return None if value is None else json.loads(value)


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    brand_id: int
    cxone_tenant_id: str
    business_unit_id: int
    api_url: str
    token_url: str
    access_key_id: str
    access_key_secret: str
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    name: str
    secret_hash: str
    created_at: int
    revoked_at: int | None
    tenant_id: str


@dataclass(frozen=True)
class Channel:
    id: str
    tenant_id: str
    adapter: str
    name: str
    webhook_url: str | None
    secret: str
    created_at: int
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Customer:
    id: str
    channel_id: str
    external_id: str
    first_name: str | None
    last_name: str | None
    nickname: str | None
    image: str | None
    custom_fields: list[dict[str, str]] | None
    opted_out: bool = False


@dataclass(frozen=True)
class Conversation:
    id: str
    channel_id: str
    customer_id: str
    state: str
    origin: str
    de_thread_id: str | None
    de_contact_id: str | None
    next_seq: int
    last_customer_activity_at: int | None
    created_at: int
    ended_at: int | None
    ended_reason: str | None
    idle_deadline: int | None = None
    countdown_deadline: int | None = None
    de_checked_at: int | None = None
    dismissed_at: int | None = None

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @property
    def in_cxone(self) -> bool:
        """CXone holds the thread: a contact of it was seen, or an agent started it there."""
        return self.de_contact_id is not None or self.origin == "agent"


@dataclass(frozen=True)
class Message:
    id: str
    channel_id: str
    conversation_id: str
    seq: int
    direction: str
    sender: str
    text: str | None
    content: dict[str, Any]
    attachments: list[dict[str, Any]]
    author: dict[str, Any] | None
    platform_message_id: str | None
    de_message_id: str | None
    status: str
    created_at: int


@dataclass(frozen=True)
class StoredAttachment:
    id: str
    channel_id: str
    customer_id: str
    access_token: str
    friendly_name: str
    mime_type: str
    size: int
    created_at: int
    # The client address of an anonymous visitor's upload (its storage quota); None otherwise.
    anonymous_from: str | None = None
    # When a message first referred to it; an upload none refers to is deleted after a grace.
    referenced_at: int | None = None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    lane: str
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: int
    last_error: str | None
    created_at: int
    # What the transaction that claimed the row read or held for its delivery, so that the
    # delivery need not read it again (`OutboxWorker.take_fresh`); None when it has nothing.
    context: Any = field(default=None, compare=False, repr=False)
