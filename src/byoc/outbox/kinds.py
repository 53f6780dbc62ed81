"""Every outbox kind, declared once: its name, its lane and its payload.

A kind is a frozen dataclass: the class names the kind (`KIND`, the string stored in the row's
`kind` column) and says where it goes; an instance is the row's payload, and `lane()` derives
the row's lane from it. Rows of one lane are delivered in order (see `byoc.outbox`), so a lane
is one conversation in one direction; typing and idle signals have lanes of their own, so a
slow message never holds up an indicator, nor an indicator a message.

`enqueue` takes a payload: no caller names a kind or a lane. Stored rows keep these names, so
renaming a `KIND` would strand the rows an existing database holds.

A payload's JSON is its fields, without those that are None. Rows written before a payload
carried its conversation id get it back from their lane (`decode`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from sqlalchemy import Connection

from byoc.outbox import rows
from byoc.store.records import Message, OutboxRow

Destination = Literal["cxone", "platform"]


@dataclasses.dataclass(frozen=True)
class Payload:
    """What one outbox row asks for; subclasses are the kinds."""

    KIND: ClassVar[str]
    DESTINATION: ClassVar[Destination]
    # The lane's prefix when it is not the destination's own (signals that must not queue
    # behind messages).
    LANE: ClassVar[str | None] = None

    conversation_id: str

    def lane(self) -> str:
        return self.lane_of(self.conversation_id)

    @classmethod
    def lane_of(cls, conversation_id: str) -> str:
        """The lane of this kind's rows about `conversation_id`."""
        return cls.lane_prefix() + conversation_id

    @classmethod
    def lane_prefix(cls) -> str:
        """What the lanes of this kind's rows are named by before the conversation's id (a
        statement that finds the conversation names its lane itself)."""
        return f"{cls.LANE or cls.DESTINATION}:"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Payload:
        """The payload a row holds; `ValueError` when it does not fit the kind."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise ValueError(f"{cls.KIND} payload {data!r}: {exc}") from exc


# --- towards CXone -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CustomerMessage(Payload):
    """A customer's message, to create in CXone."""

    KIND = "cxone.create_message"
    DESTINATION = "cxone"
    message_id: str


@dataclasses.dataclass(frozen=True)
class MessageStatus(Payload):
    """A receipt (delivered, seen, failed) for a message towards the customer."""

    KIND = "cxone.message_status"
    DESTINATION = "cxone"
    message_id: str
    status: str
    at: int
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class CustomerTyping(Payload):
    KIND = "cxone.typing"
    DESTINATION = "cxone"
    LANE = "cxone-typing"
    action: str  # isTypingOn / isTypingOff
    expires_at: int  # the worker drops the row once it is stale


@dataclasses.dataclass(frozen=True)
class BusinessOutbound(Payload):
    """A business-initiated message on a new thread (contract §3.5)."""

    KIND = "cxone.outbound"
    DESTINATION = "cxone"
    message_id: str


@dataclasses.dataclass(frozen=True)
class SystemMessage(Payload):
    """A message from the middleware (idle warning, closing note), so the agent sees it."""

    KIND = "cxone.system_message"
    DESTINATION = "cxone"
    message_id: str


@dataclasses.dataclass(frozen=True)
class EndContact(Payload):
    """End the conversation's contact in CXone, or `contact_id`, one opened by mistake."""

    KIND = "cxone.end_contact"
    DESTINATION = "cxone"
    action: str  # abandon / thread / resolve / close
    contact_id: str | None = None


@dataclasses.dataclass(frozen=True)
class FindContact(Payload):
    """Learn the CXone contact of a thread an agent started: CXone opens it as it calls the
    middleware, and its id comes back in no answer of ours."""

    KIND = "cxone.find_contact"
    DESTINATION = "cxone"


# --- towards the platform ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AgentMessage(Payload):
    """A message towards the customer (an agent's, or the middleware's)."""

    KIND = "platform.message"
    DESTINATION = "platform"
    message_id: str


@dataclasses.dataclass(frozen=True)
class AgentTyping(Payload):
    KIND = "platform.typing"
    DESTINATION = "platform"
    LANE = "platform-typing"
    typing: bool
    expires_at: int  # the worker drops the row once it is stale
    author: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class IdleChanged(Payload):
    """The idle countdown started (`warning`, until `deadline`) or was cancelled."""

    KIND = "platform.idle"
    DESTINATION = "platform"
    LANE = "platform-idle"
    warning: bool
    deadline: int | None = None


@dataclasses.dataclass(frozen=True)
class ConversationEnded(Payload):
    KIND = "platform.ended"
    DESTINATION = "platform"
    reason: str


KINDS: tuple[type[Payload], ...] = (
    CustomerMessage,
    MessageStatus,
    CustomerTyping,
    BusinessOutbound,
    SystemMessage,
    EndContact,
    FindContact,
    AgentMessage,
    AgentTyping,
    IdleChanged,
    ConversationEnded,
)
BY_NAME: dict[str, type[Payload]] = {k.KIND: k for k in KINDS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
assert len(NAMES) == len(KINDS), "two kinds share a name"


def conversation_lanes(conversation_id: str) -> list[str]:
    """Every lane a row about this conversation may be in, whatever its kind."""
    prefixes = sorted({k.LANE or k.DESTINATION for k in KINDS})
    return [f"{prefix}:{conversation_id}" for prefix in prefixes]


def enqueue(conn: Connection, payload: Payload, *, now: int, delay_ms: int = 0) -> int:
    """Queue `payload` in the caller's transaction, stamped `now` (ms, the caller's clock);
    the new row's id."""
    return rows.enqueue(
        conn,
        lane=payload.lane(),
        kind=payload.KIND,
        payload=payload.to_json(),
        now=now,
        delay_ms=delay_ms,
    )


def enqueue_claimed(
    conn: Connection,
    payload: Payload,
    *,
    now: int,
    claim: rows.Claim | None,
    message: Message | None = None,
) -> OutboxRow | None:
    """Queue `payload` claimed by `claim` when it heads its lane (`rows.enqueue_claimed`, whose
    condition on PostgreSQL the caller meets), with the row of the message it delivers if
    given: the outbox row as claimed, or None (also when `claim` is None: queued unclaimed)."""
    lane, kind, data = payload.lane(), payload.KIND, payload.to_json()
    return rows.enqueue_claimed(
        conn, lane=lane, kind=kind, payload=data, now=now, claim=claim, message=message
    )


def decode(row: OutboxRow) -> Payload:
    """The typed payload of a stored row; `ValueError` for an unknown kind or a bad payload."""
    cls = BY_NAME.get(row.kind)
    if cls is None:
        raise ValueError(f"unknown outbox kind {row.kind!r}")
    # Rows written before payloads named their conversation: the lane does.
    data = {"conversation_id": row.lane.partition(":")[2], **row.payload}
    return cls.from_json(data)
