"""What deliveries to either side share: loading a row's context, and `cxone_call`.

`cxone_call` is the one place where CXone client errors become outbox decisions: unavailable →
retry later (honouring Retry-After), rejected → dead letter. A 409 is success where the call
asks for a state CXone may already hold (a message with our id, a contact that has ended) and
a rejection, dead-lettered at once with its reason, everywhere else. It raises the
`byoc.outbox.errors` tree, which `byoc.delivery.registry` turns into the handler's outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from byoc.cxone import (
    CxoneAuthError,
    CxoneConflict,
    CxoneError,
    CxoneNotFound,
    CxoneRejected,
    CxoneUnavailable,
)
from byoc.outbox import DeliveryError, Gone, PermanentFailure, RetryLater, kinds
from byoc.store import Connection, Database, channels, conversations, messages
from byoc.store.records import Channel, Conversation, Customer, Message, OutboxRow


@asynccontextmanager
async def cxone_call(
    what: str, *, conflict_is_success: bool = False, not_found_yet: bool = False
) -> AsyncIterator[None]:
    """CXone's errors as outbox decisions. `not_found_yet`: a 404 may be CXone not having
    recorded what the call names yet, so it is retried (within the retry budget)."""
    try:
        yield
    except CxoneUnavailable as exc:
        raise RetryLater(f"{what}: {exc}", retry_after=exc.retry_after) from exc
    except CxoneAuthError as exc:
        # Credentials may be fixed by an operator; the retry budget bounds the wait.
        raise RetryLater(f"{what}: {exc}") from exc
    except CxoneConflict as exc:
        if not conflict_is_success:
            raise PermanentFailure(
                f"{what}: refused by CXone as a conflict with its current state (409): {exc}"
            ) from exc
    except CxoneNotFound as exc:
        if not_found_yet:
            raise RetryLater(f"{what}: not known to CXone yet: {exc}") from exc
        raise PermanentFailure(f"{what}: {exc}") from exc
    except CxoneRejected as exc:
        raise PermanentFailure(f"{what}: {exc}") from exc
    except CxoneError as exc:
        # An answer we could not read: the call may have worked, and every call is
        # idempotent on our ids, so trying again is safe.
        raise RetryLater(f"{what}: {exc}") from exc


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Loaded:
    channel: Channel
    conversation: Conversation
    customer: Customer
    message: Message | None


async def load(
    db: Database, *, message_id: str | None = None, conversation_id: str | None = None
) -> Loaded:
    return await db.run_read(partial(_load, message_id=message_id, conversation_id=conversation_id))


def load_in(
    conn: Connection, *, message_id: str | None = None, conversation_id: str | None = None
) -> Loaded:
    """`load` in the caller's transaction."""
    return _load(conn, message_id=message_id, conversation_id=conversation_id)


def preload_message(conn: Connection, row: OutboxRow) -> Loaded | None:
    """A message row's delivery read (a customer message's create, an agent message's webhook),
    run in the transaction that claims the row (`OutboxWorker.claim_fresh`): the message is in
    that transaction, so the delivery needs no read of its own (`preloaded`). None when the row
    cannot be served: the handler then reads, and fails, for itself."""
    try:
        payload = kinds.decode(row)
        if not isinstance(payload, kinds.CustomerMessage | kinds.AgentMessage):
            return None
        return load_in(conn, message_id=payload.message_id)
    except (ValueError, DeliveryError):
        return None


def preloaded(row: OutboxRow, message_id: str) -> Loaded | None:
    """What the transaction that claimed `row` read for its delivery about message
    `message_id` (a kind's preload, `OutboxWorker.claim_fresh`), or None: the delivery reads."""
    context = row.context
    if not isinstance(context, Loaded) or context.message is None:
        return None
    return context if context.message.id == message_id else None


def _load(conn: Connection, *, message_id: str | None, conversation_id: str | None) -> Loaded:
    """What a handler needs about a row, in one read (one statement for a message's row). A
    message or conversation that is gone (purged by retention, erased) raises `Gone`: the row
    is settled unsent."""
    message = None
    if message_id is not None:
        found = messages.get_message_in_context(conn, message_id)
        if found is None:
            raise Gone(f"message {message_id!r} no longer exists")
        message, conversation, customer, channel = found
    else:
        assert conversation_id is not None
        both = conversations.get_conversation_and_customer(conn, conversation_id)
        if both is None:
            raise Gone(f"conversation {conversation_id!r} no longer exists")
        conversation, customer = both
        channel = channels.get_channel(conn, conversation.channel_id)
    if channel is None:
        raise PermanentFailure(f"channel {conversation.channel_id!r} was deleted")
    return Loaded(channel=channel, conversation=conversation, customer=customer, message=message)
