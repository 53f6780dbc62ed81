"""Inputs and results of the conversation service (plain data, no transport types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from byoc.store.records import Conversation, Customer, Message, OutboxRow


@dataclass(frozen=True)
class CustomerProfile:
    external_id: str
    first_name: str | None = None
    last_name: str | None = None
    nickname: str | None = None
    image: str | None = None
    custom_fields: list[dict[str, str]] | None = None


@dataclass(frozen=True)
class CustomerMessageIn:
    channel_id: str
    customer: CustomerProfile
    text: str | None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    platform_message_id: str | None = None
    thread_id: str | None = None


@dataclass(frozen=True)
class AgentMessageIn:
    """An agent's (or bot's) message as CXone delivers it to the box."""

    thread_id: str | None
    de_thread_id: str | None
    de_message_id: str | None
    content: dict[str, Any]
    text: str | None
    attachments: list[dict[str, Any]]
    author: dict[str, Any] | None
    brand: dict[str, Any] | None
    recipients: list[dict[str, Any]]


@dataclass(frozen=True)
class Delivered:
    """A message stored durably; `duplicate` when an earlier identical request stored it;
    `claimed`: its outbox row, when the transaction claimed it for immediate delivery."""

    message: Message
    conversation: Conversation
    customer: Customer
    duplicate: bool = False
    claimed: OutboxRow | None = None
