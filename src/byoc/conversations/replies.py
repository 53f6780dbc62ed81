"""An agent's message on a thread the middleware knows (the reply callback): its transaction.

The hot path of the CXone → customer direction, run by `write_once` (`byoc.conversations.once`).
A reply names its channel and its thread's id nearly always: then, on a run that does not look
for an earlier copy first, the conversation's row is read and written at once, by one
statement on PostgreSQL (`conversations.next_seq_for_reply`), after the channel's checks and
before anything else. A refusal after that write (the brand) rolls it back with the run.
Otherwise, as for any agent message: find the thread (`ChannelCache.agent_thread`), look for an
earlier copy where the run says so, then reserve the sequence number. A conversation that has
ended takes no more replies (`ConversationEnded`): its customer was told it is over.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import NamedTuple

from sqlalchemy import Connection

from byoc.clock import Clock
from byoc.conversations import lifecycle, lookups
from byoc.conversations.lookups import ChannelCache
from byoc.conversations.models import (
    AgentMessageIn,
    Delivered,
    FreshRows,
    public_author,
    text_content,
)
from byoc.conversations.once import Attempt
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.queueing import store_message
from byoc.errors import ConversationEnded
from byoc.outbox import kinds
from byoc.store import conversations, customers, messages
from byoc.store.records import Channel, Conversation, Customer


class Addressed(NamedTuple):
    """A reply and where it was sent: the channel named in the request (if any), the tenant
    whose credentials sent it."""

    incoming: AgentMessageIn
    channel_id: str | None
    tenant_id: str


def store_reply(
    conn: Connection,
    attempt: Attempt,
    *,
    to: Addressed,
    cache: ChannelCache,
    policy: LifecyclePolicy,
    clock: Clock,
    fresh_rows: FreshRows | None,
) -> Delivered:
    """Store the reply and queue its delivery (claimed at once where it can be)."""
    incoming, now, seq = to.incoming, clock.now_ms(), None
    taken = _taken_at_once(conn, attempt, to, cache, policy, now, fresh_rows is not None)
    customer: Customer | None
    if taken is not None:
        channel, seq, conversation, customer = taken
    else:
        channel, conversation, customer = cache.agent_thread(
            conn, incoming, to.channel_id, to.tenant_id
        )
    if incoming.retry_id:
        find = partial(messages.find_message_by_de_id, conn, channel.id, incoming.retry_id)
        if (existing := attempt.earlier(find)) is not None:
            return lookups.replay(conn, existing)
    if not conversation.is_open:
        if seq is not None:
            # This run reserved a number no message will take. Refused: the rerun of a retry
            # (`write_once`; it looks first and reserves nothing) answers it as its copy.
            raise ConversationEnded(f"thread {conversation.id!r} has ended")
        return _after_the_end(conn, channel, conversation, incoming)
    if conversation.de_thread_id is None and incoming.de_thread_id:
        conversations.update_conversation(conn, conversation.id, de_thread_id=incoming.de_thread_id)
        conversation = replace(conversation, de_thread_id=incoming.de_thread_id)
    return store_agent_message(
        conn,
        channel,
        conversation,
        incoming,
        policy,
        now,
        customer=customer,
        fresh_rows=fresh_rows,
        seq=seq,
    )


def _after_the_end(
    conn: Connection, channel: Channel, conversation: Conversation, incoming: AgentMessageIn
) -> Delivered:
    """A reply to a conversation that has ended (the agent's close, noticed; the idle
    countdown) reaches nobody: refused, unless it is the retry of a reply stored before the
    end, which is answered as that reply."""
    if incoming.retry_id:
        earlier = messages.find_message_by_de_id(conn, channel.id, incoming.retry_id)
        if earlier is not None:
            return lookups.replay(conn, earlier)
    raise ConversationEnded(f"thread {conversation.id!r} has ended")


def _taken_at_once(
    conn: Connection,
    attempt: Attempt,
    to: Addressed,
    cache: ChannelCache,
    policy: LifecyclePolicy,
    now: int,
    take_lane: bool,
) -> tuple[Channel, int, Conversation, Customer] | None:
    """The channel, if the tenant's, then the sequence number, the conversation as this
    transaction leaves it and its customer, read and written at once. None when that cannot be: on a
    run that looks for an earlier copy (the look comes before any write), for a thread not
    named by its id or not in the channel (the usual lookup then says why), or with the idle
    clock off. With `take_lane` (a worker to claim for), the UPDATE also takes the lock of the
    reply's delivery lane (the thread's: `thread_id` is the row's id)."""
    if attempt.look_first or to.channel_id is None or not to.incoming.thread_id:
        return None
    # The refusals in the usual way's order: the channel, the thread, then the brand.
    channel = cache.tenant_channel(conn, to.channel_id, to.tenant_id, None)
    idle_deadline = lifecycle.idle_deadline_after_agent(channel, policy, now)
    if idle_deadline is None:
        return None
    thread_id = to.incoming.thread_id
    taken = conversations.next_seq_for_reply(
        conn,
        thread_id,
        channel_id=channel.id,
        idle_deadline=idle_deadline,
        lock_lane=kinds.AgentMessage.lane_of(thread_id) if take_lane else None,
    )
    if taken is None:
        return None
    cache.check_brand(conn, channel, to.incoming.brand)  # raising rolls back what was written
    return (channel, *taken)


def store_agent_message(
    conn: Connection,
    channel: Channel,
    conversation: Conversation,
    incoming: AgentMessageIn,
    policy: LifecyclePolicy,
    now: int,
    customer: Customer | None = None,
    fresh_rows: FreshRows | None = None,
    seq: int | None = None,
) -> Delivered:
    """An agent's (or bot's) message on its way to the customer, which restarts the wait for
    the customer's answer (the idle deadline). With `fresh_rows`, its outbox row is claimed
    for immediate delivery when it heads its lane (`Delivered.claimed`). With `seq`, the
    caller has reserved the sequence number and started the idle clock already
    (`conversations.next_seq_for_reply`), and `conversation` is the row as that left it; with
    `fresh_rows` too, it took the delivery lane's lock as well (`queueing.store_message`)."""
    if seq is None:
        seq, conversation = conversations.next_seq(
            conn,
            conversation.id,
            idle_deadline=lifecycle.idle_deadline_after_agent(channel, policy, now),
            lock_lane=kinds.AgentMessage.lane_of(conversation.id)
            if fresh_rows is not None
            else None,
        )
    if not conversation.is_open:  # ended after the caller read it (PostgreSQL)
        raise ConversationEnded(f"thread {conversation.id!r} has ended")
    message = lifecycle.message_for_customer(
        conversation,
        seq=seq,
        sender="bot" if (incoming.author or {}).get("isBotUser") else "agent",
        text=incoming.text,
        content=incoming.content or text_content(incoming.text),
        attachments=incoming.attachments,
        author=public_author(incoming.author),
        de_message_id=incoming.retry_id,
        now=now,
    )
    if customer is None:
        customer = customers.get_customer(conn, conversation.customer_id)
    assert customer is not None  # a conversation always has its customer (foreign key)
    # What the delivery needs is all in hand: the claim need not read it again.
    held = (message, conversation, customer, channel)
    delivery = kinds.AgentMessage(conversation.id, message.id)
    claimed = store_message(conn, message, delivery, now=now, fresh_rows=fresh_rows, held=held)
    return Delivered(message=message, conversation=conversation, customer=customer, claimed=claimed)
