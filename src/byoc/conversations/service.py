"""Conversation rules: where a message belongs, whether it may be written, what it sets off.

Every method writes its state change and the outbox rows it causes in one transaction, so a
message is either stored with its delivery queued or not stored at all. The transaction bodies
are synchronous functions on a `Connection`, run whole by `Database.run_write` (on SQLite:
the writer thread, group-committed with whatever else is being written; on PostgreSQL:
`run_sync`), and a method returns only once its transaction has committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, Protocol

from sqlalchemy import Connection

from byoc.clock import Clock, SystemClock
from byoc.conversations import lifecycle, rich
from byoc.conversations.models import AgentMessageIn, CustomerMessageIn, CustomerProfile, Delivered
from byoc.conversations.policy import LifecyclePolicy
from byoc.errors import (
    ChannelNotFound,
    ConversationEnded,
    ConversationNotFound,
    CustomerNotFound,
    Forbidden,
    InvalidInput,
    MessageNotFound,
    RecipientRejected,
)
from byoc.ids import new_id
from byoc.outbox import kinds
from byoc.outbox.kinds import enqueue
from byoc.store import (
    Database,
    DuplicateError,
    channels,
    conversations,
    customers,
    messages,
    tenants,
)
from byoc.store.records import Channel, Conversation, Customer, Message, OutboxRow

TYPING_TTL_MS = 15_000
# How long a channel or a tenant's brand read from the store is trusted: a channel deleted or
# re-branded elsewhere is refused here at most this much later (its deliveries re-read it).
LOOKUP_TTL_SECONDS = 2.0


def public_author(author: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a customer may see of an agent: a name and a picture, nothing internal."""
    if not author:
        return None
    keys = ("firstName", "nickname", "imageUrl", "isBotUser")
    return {k: author[k] for k in keys if author.get(k) is not None} or None


def _text_content(text: str | None) -> dict[str, Any]:
    return {"type": "TEXT", "payload": {"text": text or ""}}


class FreshRows(Protocol):
    """The outbox worker, seen from a transaction that enqueues a row it may deliver at once."""

    def claim_fresh(self, conn: Connection, row_id: int) -> OutboxRow | None: ...

    def dispatch(self, row: OutboxRow) -> None: ...


class ConversationService:
    def __init__(
        self,
        db: Database,
        policy: LifecyclePolicy,
        on_enqueued: Callable[[], None] = lambda: None,
        fresh_rows: FreshRows | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._clock: Clock = clock or SystemClock()
        self._policy = policy
        self._on_enqueued = on_enqueued
        self._fresh_rows = fresh_rows
        # Channels and tenants change rarely (provisioning, CLI) and maybe in another process,
        # so they are cached briefly rather than invalidated: every reply read both.
        self._channels: dict[str, tuple[float, Channel]] = {}
        self._brands: dict[str, tuple[float, dict[str, str]]] = {}

    # --- customer → CXone ------------------------------------------------------------------

    async def receive_customer_message(self, incoming: CustomerMessageIn) -> Delivered:
        has_text = bool(incoming.text and incoming.text.strip())
        if not has_text and not incoming.attachments:
            raise InvalidInput("a message needs text or at least one attachment")
        if incoming.postback is not None and not has_text:
            raise InvalidInput("a postback needs the label of the choice as its text")
        # Shielded: once stored, the row is dispatched even if the request is cancelled meanwhile
        # (a client gone, a shutdown), rather than waiting for its claim's lease to run out.
        return await asyncio.shield(self._store_and_dispatch(incoming))

    async def _store_and_dispatch(self, incoming: CustomerMessageIn) -> Delivered:
        def tx(conn: Connection) -> Delivered:
            return self._store_customer_message(conn, incoming)

        try:
            delivered = await self._db.run_write(tx)
        except DuplicateError:
            # A concurrent retry of the same platform message id committed first: run again,
            # find its message and answer as its replay.
            if not incoming.platform_message_id:
                raise
            delivered = await self._db.run_write(tx)
        if delivered.claimed is not None and self._fresh_rows is not None:
            self._fresh_rows.dispatch(delivered.claimed)  # on its way without a claim pass
        elif not delivered.duplicate:
            self._on_enqueued()
        return delivered

    def _store_customer_message(self, conn: Connection, incoming: CustomerMessageIn) -> Delivered:
        channel = self._channel(conn, incoming.channel_id)
        if incoming.platform_message_id:
            existing = messages.find_message_by_platform_id(
                conn, channel.id, incoming.platform_message_id
            )
            if existing is not None:
                return self._replay(conn, existing)
        customer = self._upsert_customer(conn, channel, incoming.customer)
        conversation = self._conversation_for_customer(conn, customer, incoming.thread_id)
        now = self._clock.now_ms()
        message = Message(
            id=new_id("msg"),
            channel_id=channel.id,
            conversation_id=conversation.id,
            seq=conversations.next_seq(conn, conversation.id),
            direction="inbound",
            sender="customer",
            text=incoming.text,
            content=_text_content(incoming.text)
            if incoming.postback is None
            else rich.choice_content(incoming.text or "", incoming.postback),
            attachments=incoming.attachments,
            author=None,
            platform_message_id=incoming.platform_message_id,
            de_message_id=None,
            status="queued",
            created_at=now,
        )
        messages.insert_message(conn, message)
        lifecycle.customer_spoke(conn, conversation, now)
        row_id = enqueue(conn, kinds.CustomerMessage(conversation.id, message.id), now=now)
        claimed = self._fresh_rows.claim_fresh(conn, row_id) if self._fresh_rows else None
        return Delivered(
            message=message, conversation=conversation, customer=customer, claimed=claimed
        )

    async def customer_typing(
        self, channel_id: str, thread_id: str, *, typing: bool
    ) -> Conversation:
        def tx(conn: Connection) -> Conversation:
            channel = self._channel(conn, channel_id)
            conversation = self._open_conversation(conn, channel, thread_id)
            now = self._clock.now_ms()
            lifecycle.customer_spoke(conn, conversation, now)
            enqueue(
                conn,
                kinds.CustomerTyping(
                    conversation.id,
                    action="isTypingOn" if typing else "isTypingOff",
                    expires_at=now + TYPING_TTL_MS,
                ),
                now=now,
            )
            return conversation

        conversation = await self._db.run_write(tx)
        self._on_enqueued()
        return conversation

    async def report_receipt(
        self, channel_id: str, message_id: str, status: Literal["delivered", "seen"]
    ) -> Message:
        """The platform says the customer received or saw an agent message; tell CXone."""

        def tx(conn: Connection) -> tuple[Message, bool]:
            channel = self._channel(conn, channel_id)
            message = messages.get_message(conn, message_id)
            if message is None or message.channel_id != channel.id or message.sender == "customer":
                raise MessageNotFound(f"no agent message {message_id!r} in channel {channel.id!r}")
            if message.status == "seen" or message.status == status:
                return message, False  # receipts repeat; CXone needs each once
            messages.set_message_status(conn, message.id, status)
            now = self._clock.now_ms()
            enqueue(
                conn,
                kinds.MessageStatus(
                    message.conversation_id, message_id=message.id, status=status, at=now
                ),
                now=now,
            )
            return message, True

        message, enqueued = await self._db.run_write(tx)
        if enqueued:
            self._on_enqueued()
        return message

    async def ensure_customer(self, channel_id: str, profile: CustomerProfile) -> Customer:
        return await self._db.run_write(
            lambda conn: self._upsert_customer(conn, self._channel(conn, channel_id), profile)
        )

    async def customer_active(self, conversation_id: str) -> None:
        """The customer did something (a button, a keystroke): they do not owe a reply."""

        def tx(conn: Connection) -> None:
            conversation = conversations.get_conversation(conn, conversation_id)
            if conversation is None or not conversation.is_open:
                raise ConversationEnded(f"thread {conversation_id!r} has ended")
            lifecycle.customer_spoke(conn, conversation, self._clock.now_ms())

        await self._db.run_write(tx)
        self._on_enqueued()

    async def dismiss_ended(self, conversation_id: str) -> None:
        """The customer asked for a new conversation: stop showing the ended one."""
        await self._db.run_write(
            lambda conn: conversations.transition_conversation(
                conn,
                conversation_id,
                {"state": "ended", "dismissed_at": None},
                dismissed_at=self._clock.now_ms(),
            )
        )

    async def set_opt_out(self, channel_id: str, external_id: str, opted_out: bool) -> Customer:
        def tx(conn: Connection) -> Customer:
            channel = self._channel(conn, channel_id)
            customer = customers.find_customer(conn, channel.id, external_id)
            if customer is None:
                raise CustomerNotFound(f"no customer {external_id!r} in channel {channel.id!r}")
            customers.set_opted_out(conn, customer.id, opted_out)
            return customer

        return await self._db.run_write(tx)

    async def open_business_outbound(
        self, channel_id: str, customer_ref: str, text: str, author: dict[str, Any] | None
    ) -> Delivered:
        """The business starts a conversation: a new thread through DE's outbound API (§3.5),
        delivered to the customer, whose answer continues it."""
        if not text.strip():
            raise InvalidInput("text must not be empty")

        def tx(conn: Connection) -> Delivered:
            channel = self._channel(conn, channel_id)
            customer = self._recipient(
                conn, channel, [{"idOnExternalPlatform": customer_ref, "isPrimary": True}]
            )
            conversation = self._new_conversation(channel.id, customer.id, origin="business")
            conversations.insert_conversation(conn, conversation)
            delivered = self._store_agent_message(
                conn,
                channel,
                conversation,
                AgentMessageIn(
                    thread_id=conversation.id,
                    de_thread_id=None,
                    de_message_id=None,
                    content=_text_content(text),
                    text=text,
                    attachments=[],
                    author=author,
                    brand=None,
                    recipients=[],
                ),
            )
            enqueue(
                conn,
                kinds.BusinessOutbound(conversation.id, delivered.message.id),
                now=delivered.message.created_at,
            )
            return delivered

        delivered = await self._db.run_write(tx)
        self._on_enqueued()
        return delivered

    # --- CXone → customer ------------------------------------------------------------------

    async def receive_agent_message(
        self, incoming: AgentMessageIn, *, channel_id: str | None
    ) -> Delivered:
        """A reply on a thread the middleware knows (legacy or DFO 3.0 style)."""
        delivered = await self._write_once(
            incoming, lambda conn: self._receive_agent_message(conn, incoming, channel_id)
        )
        if not delivered.duplicate:
            self._on_enqueued()
        return delivered

    def _receive_agent_message(
        self, conn: Connection, incoming: AgentMessageIn, channel_id: str | None
    ) -> Delivered:
        conversation, customer = self._conversation_for_agent(conn, incoming, channel_id)
        channel = self._channel(conn, conversation.channel_id)
        self._check_brand(conn, channel, incoming.brand)
        if incoming.retry_id:
            existing = messages.find_message_by_de_id(conn, channel.id, incoming.retry_id)
            if existing is not None:
                return self._replay(conn, existing)
        if conversation.de_thread_id is None and incoming.de_thread_id:
            conversations.update_conversation(
                conn, conversation.id, de_thread_id=incoming.de_thread_id
            )
        return self._store_agent_message(conn, channel, conversation, incoming, customer)

    async def open_agent_outbound(self, incoming: AgentMessageIn, *, channel_id: str) -> Delivered:
        """An agent starts a new thread with a customer the platform knows."""

        def tx(conn: Connection) -> Delivered:
            channel = self._channel(conn, channel_id)
            self._check_brand(conn, channel, incoming.brand)
            if incoming.retry_id:
                existing = messages.find_message_by_de_id(conn, channel.id, incoming.retry_id)
                if existing is not None:
                    return self._replay(conn, existing)
            customer = self._recipient(conn, channel, incoming.recipients)
            conversation = self._new_conversation(
                channel.id, customer.id, origin="agent", de_thread_id=incoming.de_thread_id
            )
            conversations.insert_conversation(conn, conversation)
            return self._store_agent_message(conn, channel, conversation, incoming)

        delivered = await self._write_once(incoming, tx)
        if not delivered.duplicate:
            self._on_enqueued()
        return delivered

    async def _write_once(
        self, incoming: AgentMessageIn, tx: Callable[[Connection], Delivered]
    ) -> Delivered:
        """Run an agent message's transaction; when a concurrent retry of the same callback
        committed the message first (the unique retry id), run it again: it finds that message
        and answers as its replay, instead of failing a request that CXone only retried."""
        try:
            return await self._db.run_write(tx)
        except DuplicateError:
            if incoming.retry_id is None:
                raise
            return await self._db.run_write(tx)

    async def validate_recipients(self, channel_id: str, recipients: list[dict[str, Any]]) -> None:
        await self._db.run_read(
            lambda conn: self._recipient(conn, self._channel(conn, channel_id), recipients)
        )

    async def agent_typing(
        self,
        channel_id: str,
        thread_id: str,
        *,
        typing: bool,
        brand: dict[str, Any] | None,
        author: dict[str, Any] | None = None,
    ) -> None:
        def tx(conn: Connection) -> None:
            channel = self._channel(conn, channel_id)
            self._check_brand(conn, channel, brand)
            conversation = conversations.get_conversation(conn, thread_id)
            if conversation is None or conversation.channel_id != channel.id:
                raise ConversationNotFound(f"no thread {thread_id!r} in channel {channel.id!r}")
            now = self._clock.now_ms()
            enqueue(
                conn,
                kinds.AgentTyping(
                    conversation.id,
                    typing=typing,
                    expires_at=now + TYPING_TTL_MS,
                    author=public_author(author),
                ),
                now=now,
            )

        await self._db.run_write(tx)
        self._on_enqueued()

    # --- helpers -----------------------------------------------------------------------------

    def _new_conversation(
        self, channel_id: str, customer_id: str, *, origin: str, de_thread_id: str | None = None
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
            created_at=self._clock.now_ms(),
            ended_at=None,
            ended_reason=None,
        )

    def _store_agent_message(
        self,
        conn: Connection,
        channel: Channel,
        conversation: Conversation,
        incoming: AgentMessageIn,
        customer: Customer | None = None,
    ) -> Delivered:
        now = self._clock.now_ms()
        idle_deadline = lifecycle.idle_deadline_after_agent(
            conversation, self._policy.for_channel(channel), now
        )
        message = lifecycle.store_for_customer(
            conn,
            conversation,
            seq=conversations.next_seq(conn, conversation.id, idle_deadline=idle_deadline),
            sender="bot" if (incoming.author or {}).get("isBotUser") else "agent",
            text=incoming.text,
            content=incoming.content or _text_content(incoming.text),
            attachments=incoming.attachments,
            author=incoming.author,
            de_message_id=incoming.retry_id,
            now=now,
        )
        if customer is None:
            customer = customers.get_customer(conn, conversation.customer_id)
        assert customer is not None  # a conversation always has its customer (foreign key)
        return Delivered(message=message, conversation=conversation, customer=customer)

    def _replay(self, conn: Connection, message: Message) -> Delivered:
        conversation = conversations.get_conversation(conn, message.conversation_id)
        assert conversation is not None
        customer = customers.get_customer(conn, conversation.customer_id)
        assert customer is not None
        return Delivered(
            message=message, conversation=conversation, customer=customer, duplicate=True
        )

    async def channel(self, channel_id: str) -> Channel:
        """The channel, from the short-lived cache when it holds it (`ChannelNotFound` if none)."""
        cached = self._channels.get(channel_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return await self._db.run_read(partial(self._channel, channel_id=channel_id))

    def _channel(self, conn: Connection, channel_id: str) -> Channel:
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

    def _check_brand(
        self, conn: Connection, channel: Channel, brand: dict[str, Any] | None
    ) -> None:
        if not brand:
            return
        for key, value in self._brand_of(conn, channel.tenant_id).items():
            given = brand.get(key)
            if given is not None and str(given) != value:
                raise Forbidden(f"brand {key} {given!r} does not own channel {channel.id!r}")

    def _upsert_customer(
        self, conn: Connection, channel: Channel, profile: CustomerProfile
    ) -> Customer:
        existing = customers.find_customer(conn, channel.id, profile.external_id)
        customer = Customer(
            id=existing.id if existing else new_id("cus"),
            channel_id=channel.id,
            external_id=profile.external_id,
            first_name=profile.first_name or (existing.first_name if existing else None),
            last_name=profile.last_name or (existing.last_name if existing else None),
            nickname=profile.nickname or (existing.nickname if existing else None),
            image=profile.image or (existing.image if existing else None),
            custom_fields=profile.custom_fields or (existing.custom_fields if existing else None),
        )
        if existing != customer:
            customers.save_customer(conn, customer, is_new=existing is None)
        return customer

    def _conversation_for_customer(
        self, conn: Connection, customer: Customer, thread_id: str | None
    ) -> Conversation:
        if thread_id is not None:
            conversation = conversations.get_conversation(conn, thread_id)
            if conversation is None or conversation.customer_id != customer.id:
                raise ConversationNotFound(f"no thread {thread_id!r} for this customer")
            if not conversation.is_open:
                raise ConversationEnded(
                    f"thread {thread_id!r} has ended; start a new conversation without a threadId"
                )
            return conversation
        conversation = conversations.latest_conversation(conn, customer.id, open_only=True)
        if conversation is not None:
            return conversation
        conversation = self._new_conversation(customer.channel_id, customer.id, origin="customer")
        conversations.insert_conversation(conn, conversation)
        return conversation

    def _open_conversation(
        self, conn: Connection, channel: Channel, thread_id: str
    ) -> Conversation:
        conversation = conversations.get_conversation(conn, thread_id)
        if conversation is None or conversation.channel_id != channel.id:
            raise ConversationNotFound(f"no thread {thread_id!r} in channel {channel.id!r}")
        if not conversation.is_open:
            raise ConversationEnded(f"thread {thread_id!r} has ended")
        return conversation

    def _conversation_for_agent(
        self, conn: Connection, incoming: AgentMessageIn, channel_id: str | None
    ) -> tuple[Conversation, Customer | None]:
        conversation, customer = None, None
        if incoming.thread_id:
            found = conversations.get_conversation_and_customer(conn, incoming.thread_id)
            if found is not None:
                conversation, customer = found
        if conversation is None and incoming.de_thread_id:
            conversation = conversations.find_conversation_by_de_thread(conn, incoming.de_thread_id)
        if conversation is None or (
            channel_id is not None and conversation.channel_id != channel_id
        ):
            raise ConversationNotFound(
                f"no thread {incoming.thread_id or incoming.de_thread_id!r}"
                + (f" in channel {channel_id!r}" if channel_id else "")
            )
        return conversation, customer

    def _recipient(
        self, conn: Connection, channel: Channel, recipients: list[dict[str, Any]]
    ) -> Customer:
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
