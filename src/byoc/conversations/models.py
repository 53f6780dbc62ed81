"""Inputs and results of the conversation service (plain data, no transport types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from byoc.outbox.rows import Claim
from byoc.store.messages import MessageInContext
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
    # The postback of the button or list item the customer chose (its label is `text`).
    postback: str | None = None
    # The customer's uploads that `attachments` link to (the widget's): marked as carried by a
    # message in the message's own transaction, so a refused message leaves them to the sweep.
    upload_ids: tuple[str, ...] = ()


IDEMPOTENCY_KEY_PREFIX = "key:"
# The largest sequence number a conversation holds (a 64-bit column): a reader asking for the
# messages after a larger one is refused before the store sees the number.
MAX_SEQ = 2**63 - 1


@dataclass(frozen=True)
class AgentMessageIn:
    """An agent's (or bot's) message as CXone delivers it to the box.

    `idempotency_key`: the callback's `Idempotency-Key` (or `X-Request-Id`) header, for the
    callbacks whose body names no DE message id."""

    thread_id: str | None
    de_thread_id: str | None
    de_message_id: str | None
    content: dict[str, Any]
    text: str | None
    attachments: list[dict[str, Any]]
    author: dict[str, Any] | None
    brand: dict[str, Any] | None
    recipients: list[dict[str, Any]]
    idempotency_key: str | None = None

    @property
    def retry_id(self) -> str | None:
        """What a retry of this callback is recognised by, within its channel: CXone's message
        id, else the request's idempotency key (prefixed: it can never equal a DE id, which is
        a UUID). None: a retry cannot be told from a new message."""
        if self.de_message_id:
            return self.de_message_id
        if self.idempotency_key:
            return IDEMPOTENCY_KEY_PREFIX + self.idempotency_key
        return None


@dataclass(frozen=True)
class Delivered:
    """A message stored durably; `duplicate` when an earlier identical request stored it;
    `claimed`: its outbox row, when the transaction claimed it for immediate delivery."""

    message: Message
    conversation: Conversation
    customer: Customer
    duplicate: bool = False
    claimed: OutboxRow | None = None


def public_author(author: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a customer may see of an agent: a name and a picture (strings), whether it is a
    bot (a boolean); nothing internal (CXone's `authorUser` holds the agent's ids, login and
    e-mail address), and nothing of another type for a platform's or the widget's code to
    trip over."""
    if not author:
        return None
    public: dict[str, Any] = {
        k: author[k]
        for k in ("firstName", "nickname", "imageUrl")
        if isinstance(author.get(k), str)
    }
    if isinstance(author.get("isBotUser"), bool):
        public["isBotUser"] = author["isBotUser"]
    return public or None


def text_content(text: str | None) -> dict[str, Any]:
    """A plain message's `messageContent`."""
    return {"type": "TEXT", "payload": {"text": text or ""}}


class FreshRows(Protocol):
    """The outbox worker, seen from a transaction that enqueues a row it may deliver at once."""

    def fresh_claim(self) -> Claim | None: ...

    def take_fresh(
        self, conn: Connection, row: OutboxRow, held: MessageInContext | None = None
    ) -> OutboxRow: ...

    def dispatch(self, row: OutboxRow) -> None: ...
