"""How conversations end (contract §4): the idle countdown and agent-ended conversations.

Deadlines are columns, never in-memory timers: whichever instance is up fires them, a restart
fires the overdue ones, and every transition is a compare-and-set on the row, so a deadline
fires once however many instances race for it.

Time is injected: the state changes take `now` (ms), the loops read their `Clock` (tests move it).
The timeouts, per deployment and per channel, are a `LifecyclePolicy` (`byoc.conversations.policy`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from sqlalchemy import Connection

from byoc.clock import Clock
from byoc.conversations.ended_in_cxone import why_ended
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.queueing import store_message
from byoc.cxone import CxoneError, CxoneUnavailable
from byoc.ids import new_id
from byoc.outbox import kinds
from byoc.outbox.kinds import enqueue
from byoc.settings import Settings
from byoc.store import Database, StoreError, channels, conversations
from byoc.store.records import Channel, Conversation, Message
from byoc.tenancy import TenantClients

log = logging.getLogger(__name__)

# A conversation CXone could not be asked about waits this many poll intervals for its next check.
END_CHECK_PAUSE_ROUNDS = 12


# --- state changes inside the caller's transaction (synchronous: see `Database.run_write`) ----


def idle_deadline_after_agent(channel: Channel, policy: LifecyclePolicy, now: int) -> int | None:
    """The customer owes a reply: the idle deadline an agent message on `channel` starts, or
    None when the channel's idle clock is off.

    The store applies it with the message's sequence number (`conversations.next_seq`), and only
    while the conversation is open and no countdown runs: a compare-and-set in the same UPDATE.
    """
    channel_policy = policy.for_channel(channel)
    return now + channel_policy.idle_timeout_ms if channel_policy.idle_enabled else None


def customer_spoke(
    conn: Connection, conversation: Conversation, now: int, restart: int | None = None
) -> bool:
    """Any customer activity: a running countdown is cancelled, and a reply the customer owed
    is owed until `restart` (typing, "still here": the idle clock again), or not (a message).

    `conversation` may be stale: on PostgreSQL an idle warning can commit between the caller's
    read and this write. Both changes are compare-and-sets, so a countdown started since is
    seen and cancelled too. False, with nothing changed, when the conversation has ended by now.
    """
    for _ in range(3):
        if conversation.countdown_deadline is None:
            if conversations.customer_active(conn, conversation.id, now, restart):
                return True
        elif conversations.transition_conversation(
            conn,
            conversation.id,
            {"state": "open", "countdown_deadline": conversation.countdown_deadline},
            countdown_deadline=None,
            idle_deadline=restart,
            last_customer_activity_at=now,
        ):
            enqueue(conn, kinds.IdleChanged(conversation.id, warning=False), now=now)
            return True
        current = conversations.get_conversation(conn, conversation.id)
        if current is None or not current.is_open:
            return False
        conversation = current
    return False


def customer_wrote(
    conn: Connection, conversation: Conversation, now: int, lock_lane: str | None = None
) -> tuple[int, Conversation] | None:
    """A customer's message: its sequence number and the conversation as this transaction
    leaves it (`conversations.next_seq`), and the activity `customer_spoke` records (one
    statement while no countdown runs). None, with nothing changed, when the conversation has
    ended since `conversation` was read: the caller looks for the conversation again. With
    `lock_lane`, a number comes with that outbox lane's lock held (PostgreSQL)."""
    conversation_id = conversation.id
    if conversation.countdown_deadline is None:
        taken = conversations.next_seq_if_no_countdown(
            conn, conversation_id, at=now, lock_lane=lock_lane
        )
        if taken is not None:
            return taken
    if not customer_spoke(conn, conversation, now):
        return None
    return conversations.next_seq(conn, conversation_id, lock_lane=lock_lane)


def message_for_customer(
    conversation: Conversation,
    *,
    seq: int,
    sender: str,
    text: str | None,
    content: dict[str, Any],
    attachments: list[dict[str, Any]] | None = None,
    author: dict[str, Any] | None = None,
    de_message_id: str | None = None,
    now: int,
) -> Message:
    """A new message towards the customer, to store with its delivery to the platform
    (`queueing.store_message` with a `kinds.AgentMessage`)."""
    return Message(
        id=new_id("msg"),
        channel_id=conversation.channel_id,
        conversation_id=conversation.id,
        seq=seq,
        direction="outbound",
        sender=sender,
        text=text,
        content=content,
        attachments=attachments or [],
        author=author,
        platform_message_id=None,
        de_message_id=de_message_id,
        status="queued",
        created_at=now,
    )


def add_system_message(
    conn: Connection, conversation: Conversation, text: str, now: int
) -> Message:
    """A message from the middleware itself, shown to the customer and to the agent."""
    message = message_for_customer(
        conversation,
        seq=conversations.next_seq(conn, conversation.id)[0],
        sender="system",
        text=text,
        content={"type": "TEXT", "payload": {"text": text}},
        now=now,
    )
    store_message(conn, message, kinds.AgentMessage(conversation.id, message.id), now=now)
    if conversation.in_cxone:
        enqueue(conn, kinds.SystemMessage(conversation.id, message.id), now=now)
    return message


def end_conversation(
    conn: Connection,
    conversation: Conversation,
    *,
    reason: str,
    now: int,
    end_in_cxone: str | None = None,
    final_text: str | None = None,
    also_expect: Mapping[str, Any] | None = None,
) -> bool:
    """Open → ended, once. Tells the platform; with `end_in_cxone`, ends the contact in CXone.
    With `also_expect`, only if the row still holds those values as well."""
    if not _closed(conn, conversation, reason, now, also_expect):
        return False
    if final_text:
        add_system_message(conn, conversation, final_text, now)
    if end_in_cxone and conversation.in_cxone:
        enqueue(conn, kinds.EndContact(conversation.id, action=end_in_cxone), now=now)
    enqueue(conn, kinds.ConversationEnded(conversation.id, reason=reason), now=now)
    return True


def retire(conn: Connection, conversation: Conversation, now: int) -> bool:
    """Open → ended, once, for a conversation whose channel was deleted: nothing is sent, as
    the channel is gone on both sides; its timers and the end poll leave it alone from now on."""
    return _closed(conn, conversation, "channel-deleted", now)


def _closed(
    conn: Connection,
    conversation: Conversation,
    reason: str,
    now: int,
    also_expect: Mapping[str, Any] | None = None,
) -> bool:
    """The row's open → ended compare-and-set, its deadlines cleared; nothing sent."""
    return conversations.transition_conversation(
        conn,
        conversation.id,
        {"state": "open", **(also_expect or {})},
        state="ended",
        ended_at=now,
        ended_reason=reason,
        idle_deadline=None,
        countdown_deadline=None,
    )


def end_with_stray_contact(
    conn: Connection, conversation: Conversation, stray_contact_id: str, checked_at: int
) -> bool:
    """The conversation's contact ended in CXone while a customer message was on its way, and
    that message made DE open a new contact on the thread: end the conversation here, and
    close the new contact before an agent accepts it (queued, so it survives a restart)."""
    conversations.mark_checked_in_cxone(conn, conversation.id, checked_at)
    ended = end_conversation(conn, conversation, reason="agent", now=checked_at)
    enqueue(
        conn,
        kinds.EndContact(conversation.id, action="close", contact_id=stray_contact_id),
        now=checked_at,
    )
    return ended


# --- the loops -------------------------------------------------------------------------------


class LifecycleLoops:
    """Fires idle deadlines and watches CXone for conversations an agent ended."""

    def __init__(
        self,
        db: Database,
        tenants: TenantClients,
        policy: LifecyclePolicy,
        settings: Settings,
        on_enqueued: Any,
        clock: Clock,
    ) -> None:
        self._db = db
        self._clock = clock
        self._tenants = tenants
        self._policy = policy
        self._settings = settings
        self._on_enqueued = on_enqueued
        self._stopping = asyncio.Event()
        self.fired_warnings = 0
        self.fired_endings = 0
        self.agent_endings = 0
        # Channels whose CXone was unavailable, and until when (monotonic) the poll skips them.
        self._resting: dict[str, float] = {}

    async def run(self) -> None:
        await asyncio.gather(
            self._every(self._settings.timer_poll_interval_seconds, self.fire_due_timers),
            self._every(self._settings.end_poll_interval_seconds, self.check_agent_ended),
        )

    def stop(self) -> None:
        self._stopping.set()

    async def _every(self, interval: float, work: Any) -> None:
        while not self._stopping.is_set():
            # Taken before the work: time that passes during it counts towards the next round.
            next_round = self._clock.monotonic() + interval
            try:
                await work()
            except (StoreError, CxoneError) as exc:
                log.warning("lifecycle: %s failed: %s", work.__name__, exc)
            except Exception:
                log.exception("lifecycle: %s crashed", work.__name__)
            await self._clock.wait(self._stopping, until=next_round)

    async def fire_due_timers(self) -> int:
        now = self._clock.now_ms()

        def due(conn: Connection) -> tuple[list[Conversation], list[Conversation]]:
            return (
                conversations.due_conversations(conn, "idle_deadline", now, 200),
                conversations.due_conversations(conn, "countdown_deadline", now, 200),
            )

        warnings, endings = await self._db.run_read(due)
        fired = 0
        for conversation in warnings:
            warned = await self._db.run_write(
                partial(self._warn, conversation=conversation, now=now)
            )
            self.fired_warnings += warned
            fired += warned
        for conversation in endings:
            ended = await self._db.run_write(
                partial(self._end_idle, conversation=conversation, now=now)
            )
            self.fired_endings += ended
            fired += ended
        if fired:
            self._on_enqueued()
        return fired

    def _warn(self, conn: Connection, conversation: Conversation, now: int) -> int:
        channel = channels.get_channel(conn, conversation.channel_id)
        if channel is None:
            retire(conn, conversation, now)
            return 0
        policy = self._policy.for_channel(channel)
        deadline = now + policy.countdown_ms
        won = conversations.transition_conversation(
            conn,
            conversation.id,
            {"state": "open", "idle_deadline": conversation.idle_deadline},
            idle_deadline=None,
            countdown_deadline=deadline,
        )
        if not won:
            return 0
        seconds = round(policy.countdown_ms / 1000)
        add_system_message(conn, conversation, policy.warning_text.format(seconds=seconds), now)
        enqueue(conn, kinds.IdleChanged(conversation.id, warning=True, deadline=deadline), now=now)
        return 1

    def _end_idle(self, conn: Connection, conversation: Conversation, now: int) -> int:
        channel = channels.get_channel(conn, conversation.channel_id)
        if channel is None:
            retire(conn, conversation, now)
            return 0
        policy = self._policy.for_channel(channel)
        current = conversations.get_conversation(conn, conversation.id)
        if current is None or current.countdown_deadline != conversation.countdown_deadline:
            return 0  # cancelled by customer activity, or fired elsewhere
        ended = end_conversation(
            conn,
            current,
            reason="idle",
            now=now,
            end_in_cxone=policy.end_action,
            final_text=policy.ended_text,
            # The customer's answer may commit after the read above (PostgreSQL).
            also_expect={"countdown_deadline": current.countdown_deadline},
        )
        return int(ended)

    async def check_agent_ended(self) -> int:
        """A bounded round: at most `end_poll_batch_size` conversations asked about (two DE
        calls each) per interval, so the request rate to CXone stays flat however many
        conversations are open. A conversation CXone cannot be asked about, or a channel whose
        CXone is unavailable, waits `END_CHECK_PAUSE_ROUNDS` intervals, holding up no other."""
        limit, now, clock = self._settings.end_poll_batch_size, self._clock.now_ms(), self._clock
        pause = END_CHECK_PAUSE_ROUNDS * self._settings.end_poll_interval_seconds
        self._resting = {c: t for c, t in self._resting.items() if t > clock.monotonic()}
        resting = tuple(self._resting)
        candidates = await self._db.run_read(
            lambda conn: conversations.conversations_to_check(conn, limit, now, resting)
        )
        ended = 0
        for conversation in candidates:
            if conversation.channel_id in self._resting:  # found unavailable in this round
                continue
            try:
                ended += await self.refresh_from_cxone(conversation)
            except CxoneUnavailable as exc:
                log.warning("end checks of channel %s paused: %s", conversation.channel_id, exc)
                self._resting[conversation.channel_id] = clock.monotonic() + pause
            except (CxoneError, LookupError) as exc:
                log.warning("end check of %s failed: %s", conversation.id, exc)
                until = clock.now_ms() + int(pause * 1000)
                await self._db.run_write(
                    conversations.update_conversation, conversation.id, de_poll_after=until
                )
        if ended:
            self._on_enqueued()
        return ended

    async def refresh_from_cxone(self, conversation: Conversation) -> bool:
        """Ask CXone whether the conversation is over; end it here if so."""
        if conversation.de_contact_id is None:
            return False
        channel = await self._db.run_read(
            lambda conn: channels.get_channel(conn, conversation.channel_id)
        )
        if channel is None:
            now = self._clock.now_ms()
            await self._db.run_write(partial(retire, conversation=conversation, now=now))
            return False
        de = await self._tenants.for_tenant(channel.tenant_id)
        why = await why_ended(de, channel.id, conversation.id, conversation.de_contact_id)
        checked_at = self._clock.now_ms()
        if why is None:
            await self._db.run_write(
                lambda conn: conversations.mark_checked_in_cxone(conn, conversation.id, checked_at)
            )
            return False
        return await self.ended_in_cxone(conversation, why, checked_at)

    async def ended_in_cxone(self, conversation: Conversation, why: str, checked_at: int) -> bool:
        """CXone said the conversation is over (`why`): end it here."""

        def tx(conn: Connection) -> bool:
            conversations.mark_checked_in_cxone(conn, conversation.id, checked_at)
            return end_conversation(conn, conversation, reason="agent", now=checked_at)

        ended = await self._db.run_write(tx)
        if ended:
            self.agent_endings += 1
            log.info("conversation %s was ended in CXone (%s)", conversation.id, why)
        return ended
