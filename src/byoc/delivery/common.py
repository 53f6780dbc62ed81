"""What deliveries to either side share: loading a row's context, and `cxone_call`.

`cxone_call` is the one place where CXone client errors become outbox decisions: unavailable →
retry later (honouring Retry-After), rejected → dead letter. A 409 is success where the call
asks for a state CXone may already hold (a message with our id, a contact that has ended) and
a rejection, dead-lettered at once with its reason, everywhere else. It raises the
`byoc.outbox.errors` tree, which `byoc.delivery.registry` turns into the handler's outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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
from byoc.outbox import Gone, PermanentFailure, RetryLater, kinds
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


def preload_messages(conn: Connection, rows: Sequence[OutboxRow]) -> list[Loaded | None]:
    """The delivery reads of message rows (a customer message's create, an agent message's
    webhook), one statement for all of them, run in the transaction that claims them
    (`OutboxWorker`: a fresh row by its intake, due rows by a pass): their messages are in that
    transaction, so the deliveries need no read of their own (`preloaded`). A row whose intake
    held its message in context already (`OutboxWorker.take_fresh`) is served from that, with
    no read. None for a row that cannot be served: its handler then reads, and fails, for itself."""
    wanted: list[str | None] = []
    for row in rows:
        try:
            payload = kinds.decode(row)
        except ValueError:
            payload = None
        message_id = None
        if isinstance(payload, kinds.CustomerMessage | kinds.AgentMessage):
            message_id = payload.message_id
        wanted.append(message_id if isinstance(message_id, str) else None)
    held: dict[str, messages.MessageInContext] = {
        m: row.context for row, m in zip(rows, wanted, strict=True) if m and _holds(row, m)
    }
    found = messages.get_messages_in_context(
        conn, [m for m in wanted if m is not None and m not in held]
    )
    found.update(held)
    return [_servable(found.get(m)) if m is not None else None for m in wanted]


def _holds(row: OutboxRow, message_id: str) -> bool:
    """Whether the row's intake handed over message `message_id` in context (a
    `messages.MessageInContext`, `OutboxWorker.take_fresh`)."""
    context = row.context
    return (
        isinstance(context, tuple)
        and isinstance(context[0], Message)
        and context[0].id == message_id
    )


def _servable(found: messages.MessageInContext | None) -> Loaded | None:
    if found is None:
        return None
    message, conversation, customer, channel = found
    if channel is None:
        return None
    return Loaded(channel=channel, conversation=conversation, customer=customer, message=message)


def preloaded(row: OutboxRow, message_id: str) -> Loaded | None:
    """What the transaction that claimed `row` read or held for its delivery about message
    `message_id` (a kind's preload, `OutboxWorker.take_fresh`), or None: the delivery reads."""
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
        found = messages.get_messages_in_context(conn, [message_id]).get(message_id)
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
