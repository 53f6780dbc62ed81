"""What a conversation transaction looks up before it writes: the channel and its tenant's
brand (cached briefly), the customer, the conversation a message belongs to, the recipient of
an agent-initiated thread; and, for a customer's message, the customer and conversation with
its sequence number taken (`taken_for_customer_message`: on PostgreSQL the lookup and the
write are one statement). Synchronous functions on the caller's `Connection`; they raise the
domain's errors (`byoc.errors`), never HTTP ones."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection

from byoc.conversations import lifecycle
from byoc.conversations.models import AgentMessageIn, CustomerProfile, Delivered
from byoc.errors import (
    ChannelNotFound,
    ConversationEnded,
    ConversationNotFound,
    Forbidden,
    MessageNotFound,
    RecipientRejected,
)
from byoc.ids import new_id
from byoc.store import channels, conversations, customers, message_intake, messages, tenants
from byoc.store.records import Channel, Conversation, Customer, Message, dumps

# How long a channel or a tenant's brand read from the store is trusted: a channel deleted or
# re-branded elsewhere is refused here at most this much later. A message accepted in that
# window is delivered at once with the channel as accepted; a later delivery of it (a retry, a
# row claimed by a pass) reads the channel again, and finds it deleted.
LOOKUP_TTL_SECONDS = 2.0


class ChannelCache:
    """Channels and tenants' brands, read in the caller's transaction and trusted for
    `LOOKUP_TTL_SECONDS`. They change rarely (provisioning, the CLI), maybe in another
    process, so they are cached briefly rather than invalidated: every reply reads both."""

    def __init__(self) -> None:
        self._channels: dict[str, tuple[float, Channel]] = {}
        self._brands: dict[str, tuple[float, dict[str, str]]] = {}

    def cached_channel(self, channel_id: str) -> Channel | None:
        cached = self._channels.get(channel_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def channel(self, conn: Connection, channel_id: str) -> Channel:
        now = time.monotonic()
        cached = self._channels.get(channel_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        channel = channels.get_channel(conn, channel_id)
        if channel is None:
            self._channels.pop(channel_id, None)
            raise ChannelNotFound(f"no channel {channel_id!r}")
        self._channels[channel_id] = (now + LOOKUP_TTL_SECONDS, channel)
        return channel

    def tenant_channel(
        self, conn: Connection, channel_id: str, tenant_id: str, brand: dict[str, Any] | None
    ) -> Channel:
        """The channel, if it belongs to `tenant_id` and `brand` (when given) is the tenant's.
        Another tenant's channel is answered exactly as an unknown one, so a caller learns
        nothing about what others have."""
        channel = self.channel(conn, channel_id)
        if channel.tenant_id != tenant_id:
            raise ChannelNotFound(f"no channel {channel_id!r}")
        self.check_brand(conn, channel, brand)
        return channel

    def agent_thread(
        self, conn: Connection, incoming: AgentMessageIn, channel_id: str | None, tenant_id: str
    ) -> tuple[Channel, Conversation, Customer | None]:
        """The channel and thread of an agent message sent for `tenant_id`: the threads of
        other tenants' channels are not found."""
        if channel_id is not None:
            self.tenant_channel(conn, channel_id, tenant_id, None)
        conversation, customer = conversation_for_agent(conn, incoming, channel_id)
        channel = self.channel(conn, conversation.channel_id)
        if channel.tenant_id != tenant_id:
            raise ConversationNotFound(f"no thread {incoming.thread_id or incoming.de_thread_id!r}")
        self.check_brand(conn, channel, incoming.brand)
        return channel, conversation, customer

    def _brand_of(self, conn: Connection, tenant_id: str) -> dict[str, str]:
        now = time.monotonic()
        cached = self._brands.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant = tenants.get_tenant(conn, tenant_id)
        expected = {}
        if tenant is not None:
            expected = {
                "id": str(tenant.brand_id),
                "tenantId": tenant.cxone_tenant_id,
                "businessUnitId": str(tenant.business_unit_id),
            }
        self._brands[tenant_id] = (now + LOOKUP_TTL_SECONDS, expected)
        return expected

    def check_brand(self, conn: Connection, channel: Channel, brand: dict[str, Any] | None) -> None:
        if not brand:
            return
        for key, value in self._brand_of(conn, channel.tenant_id).items():
            given = brand.get(key)
            if given is not None and str(given) != value:
                raise Forbidden(f"brand {key} {given!r} does not own channel {channel.id!r}")


def new_conversation(
    channel_id: str,
    customer_id: str,
    *,
    origin: str,
    now: int,
    de_thread_id: str | None = None,
) -> Conversation:
    return Conversation(
        id=new_id("thr"),
        channel_id=channel_id,
        customer_id=customer_id,
        state="open",
        origin=origin,
        de_thread_id=de_thread_id,
        de_contact_id=None,
        next_seq=0,
        last_customer_activity_at=None,
        created_at=now,
        ended_at=None,
        ended_reason=None,
    )


def replay(conn: Connection, message: Message) -> Delivered:
    conversation = conversations.get_conversation(conn, message.conversation_id)
    assert conversation is not None
    customer = customers.get_customer(conn, conversation.customer_id)
    assert customer is not None
    return Delivered(message=message, conversation=conversation, customer=customer, duplicate=True)


def upsert_customer(conn: Connection, channel: Channel, profile: CustomerProfile) -> Customer:
    existing = customers.find_customer(conn, channel.id, profile.external_id)
    return _saved(conn, channel, profile, existing)


def _saved(
    conn: Connection, channel: Channel, profile: CustomerProfile, existing: Customer | None
) -> Customer:
    """The customer as `profile` says, over what the store held (`existing`); written when it
    changed."""
    customer = _profiled(channel, profile, existing)
    if existing != customer:
        customers.save_customer(conn, customer, is_new=existing is None)
    return customer


def _profiled(channel: Channel, profile: CustomerProfile, existing: Customer | None) -> Customer:
    """The customer as `profile` says, over what the store held (`existing`)."""
    return Customer(
        id=existing.id if existing else new_id("cus"),
        channel_id=channel.id,
        external_id=profile.external_id,
        first_name=profile.first_name or (existing.first_name if existing else None),
        last_name=profile.last_name or (existing.last_name if existing else None),
        nickname=profile.nickname or (existing.nickname if existing else None),
        image=profile.image or (existing.image if existing else None),
        custom_fields=profile.custom_fields or (existing.custom_fields if existing else None),
        opted_out=existing.opted_out if existing else False,
    )


def taken_for_customer_message(
    conn: Connection,
    channel: Channel,
    profile: CustomerProfile,
    thread_id: str | None,
    *,
    now: int,
    lane_prefix: str | None,
) -> tuple[int, Customer, Conversation]:
    """A customer's message: its sequence number, its customer (as `upsert_customer` would
    save it) and the conversation it goes to (as `conversation_for_customer` finds it) as this
    transaction leaves them,
    with the customer's activity recorded (`lifecycle.customer_wrote`). With `lane_prefix`,
    the number comes with the lock of the conversation's lane, `lane_prefix` + its id.

    On PostgreSQL the common case is one statement (`message_intake`). Otherwise one read
    (`conversations.customer_and_conversation`) finds both, then the conversation is written,
    then the customer's changed profile: a conversation's row is locked before its customer's,
    as an erasure and the one statement (which may hold the row when it finds nothing) do.
    A new customer's row is inserted first: no one else can hold it. Opening a conversation
    takes the customer's opening lock (`conversations.lock_opening`), before the new row's
    lock, or after an ended one's when a look found it ended: two messages of one customer
    can then deadlock, rarely; PostgreSQL breaks it within `deadlock_timeout`, and the
    message's transaction runs again (`Contention`, `byoc.conversations.once`)."""
    given: dict[str, str | None] = {
        name: getattr(profile, name) or None
        for name in message_intake.PROFILE_COLUMNS
        if name != "custom_fields"
    }
    given["custom_fields"] = dumps(profile.custom_fields) if profile.custom_fields else None
    at_once = message_intake.take_for_customer_message(
        conn, channel.id, profile.external_id, thread_id, given, at=now, lane_prefix=lane_prefix
    )
    if at_once is not None:  # the profile as stored (the statement compared it)
        seq, conversation, customer = at_once
        return seq, customer, conversation
    existing, found = conversations.customer_and_conversation(
        conn, channel.id, profile.external_id, thread_id
    )
    customer = _profiled(channel, profile, existing)
    if existing is None:
        customers.save_customer(conn, customer, is_new=True)
    conversation = _conversation_found(conn, customer, thread_id, found, now=now)
    # An end committed between the read and the write (PostgreSQL): look again, which finds
    # the ended thread refused, or a new conversation started.
    for looks in range(3):
        if looks:
            conversation = conversation_for_customer(conn, customer, thread_id, now=now)
        lock = None if lane_prefix is None else lane_prefix + conversation.id
        taken = lifecycle.customer_wrote(conn, conversation, now, lock)
        if taken is not None:
            if existing is not None and existing != customer:
                customers.save_customer(conn, customer, is_new=False)
            return taken[0], customer, taken[1]
    raise ConversationEnded("the conversation ended while this message was stored")


def conversation_for_customer(
    conn: Connection, customer: Customer, thread_id: str | None, *, now: int
) -> Conversation:
    """The conversation a message of `customer` goes to: the thread named (which must be theirs
    and open), or their latest open conversation, or a new one."""
    if thread_id is not None:
        found = conversations.get_conversation(conn, thread_id)
    else:
        found = conversations.latest_conversation(conn, customer.id, open_only=True)
    return _conversation_found(conn, customer, thread_id, found, now=now)


def _conversation_found(
    conn: Connection,
    customer: Customer,
    thread_id: str | None,
    found: Conversation | None,
    *,
    now: int,
) -> Conversation:
    if thread_id is not None:
        if found is None or found.customer_id != customer.id:
            raise ConversationNotFound(f"no thread {thread_id!r} for this customer")
        if not found.is_open:
            raise ConversationEnded(
                f"thread {thread_id!r} has ended; start a new conversation without a threadId"
            )
        return found
    if found is not None:
        return found
    # Several messages of a customer without an open conversation, at once (PostgreSQL): the
    # first opens one, the others wait for its commit and then take it.
    if conversations.lock_opening(conn, customer.id):
        found = conversations.latest_conversation(conn, customer.id, open_only=True)
        if found is not None:
            return found
    conversation = new_conversation(customer.channel_id, customer.id, origin="customer", now=now)
    conversations.insert_conversation(conn, conversation)
    return conversation


def open_conversation(conn: Connection, channel: Channel, thread_id: str) -> Conversation:
    conversation = conversations.get_conversation(conn, thread_id)
    if conversation is None or conversation.channel_id != channel.id:
        raise ConversationNotFound(f"no thread {thread_id!r} in channel {channel.id!r}")
    if not conversation.is_open:
        raise ConversationEnded(f"thread {thread_id!r} has ended")
    return conversation


def conversation_for_agent(
    conn: Connection, incoming: AgentMessageIn, channel_id: str | None
) -> tuple[Conversation, Customer | None]:
    conversation, customer = None, None
    if incoming.thread_id:
        found = conversations.get_conversation_and_customer(conn, incoming.thread_id)
        if found is not None:
            conversation, customer = found
    if conversation is None and incoming.de_thread_id:
        conversation = conversations.find_conversation_by_de_thread(conn, incoming.de_thread_id)
    if conversation is None or (channel_id is not None and conversation.channel_id != channel_id):
        raise ConversationNotFound(
            f"no thread {incoming.thread_id or incoming.de_thread_id!r}"
            + (f" in channel {channel_id!r}" if channel_id else "")
        )
    return conversation, customer


def recipient(conn: Connection, channel: Channel, recipients: list[dict[str, Any]]) -> Customer:
    if not recipients:
        raise RecipientRejected("endUserRecipients is empty", recipient_id="")
    primary = next((r for r in recipients if r.get("isPrimary")), recipients[0])
    recipient_id = str(primary.get("idOnExternalPlatform") or "")
    customer = customers.get_customer(conn, recipient_id) if recipient_id else None
    if customer is None and recipient_id:
        # CXone may hold the platform's own user id when an agent typed it in by hand.
        customer = customers.find_customer(conn, channel.id, recipient_id)
    if customer is None or customer.channel_id != channel.id:
        raise RecipientRejected(
            f"recipient {recipient_id!r} is not a customer of channel {channel.id!r}",
            recipient_id=recipient_id,
        )
    if customer.opted_out:
        raise RecipientRejected(
            f"recipient {recipient_id!r} has opted out of messages", recipient_id=recipient_id
        )
    return customer


def receipt_message(
    conn: Connection, channel: Channel, message_id: str, customer_id: str | None
) -> Message:
    """The agent message of `channel` a receipt is for.

    `customer_id` is the customer who sends the receipt when the platform speaks for one
    customer (a widget): only the messages of that customer's own conversations are theirs
    to report. None when the sender speaks for the whole channel (the signed platform API).
    """
    message = messages.get_message(conn, message_id)
    if message is None or message.channel_id != channel.id or message.sender == "customer":
        raise MessageNotFound(f"no agent message {message_id!r} in channel {channel.id!r}")
    if customer_id is not None:
        conversation = conversations.get_conversation(conn, message.conversation_id)
        if conversation is None or conversation.customer_id != customer_id:
            raise MessageNotFound(f"no agent message {message_id!r} in your conversations")
    return message
