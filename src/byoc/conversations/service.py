"""Conversation rules: where a message belongs, whether it may be written, what it sets off.

Every method writes its state change and the outbox rows it causes in one transaction, so a
message is either stored with its delivery queued or not stored at all. The transaction bodies
are synchronous functions on a `Connection`, run whole by `Database.run_write` (on SQLite:
group-committed with whatever else is being written; on PostgreSQL:
`run_sync`), and a method returns only once its transaction has committed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from sqlalchemy import Connection

from byoc.clock import Clock, SystemClock
from byoc.conversations import lifecycle, lookups, replies, rich
from byoc.conversations.lookups import ChannelCache
from byoc.conversations.models import (
    AgentMessageIn,
    CustomerMessageIn,
    CustomerProfile,
    Delivered,
    FreshRows,
    public_author,
    text_content,
)
from byoc.conversations.once import Attempt, write_once
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.queueing import store_message
from byoc.conversations.replies import store_agent_message
from byoc.errors import (
    AttachmentGone,
    ConversationEnded,
    ConversationNotFound,
    CustomerNotFound,
    InvalidInput,
)
from byoc.ids import new_id
from byoc.outbox import kinds
from byoc.outbox.kinds import enqueue
from byoc.store import (
    Database,
    DuplicateError,
    attachments,
    conversations,
    customers,
    messages,
)
from byoc.store.records import Channel, Conversation, Customer, Message

TYPING_TTL_MS = 15_000
# CXone opens an agent-started thread's contact as it calls us: asked for a moment later.
FIND_CONTACT_MS = 1_000


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
        self._cache = ChannelCache()

    # --- customer → CXone ------------------------------------------------------------------

    async def receive_customer_message(self, incoming: CustomerMessageIn) -> Delivered:
        has_text = bool(incoming.text and incoming.text.strip())
        if not has_text and not incoming.attachments:
            raise InvalidInput("a message needs text or at least one attachment")
        if incoming.postback is not None and not has_text:
            raise InvalidInput("a postback needs the label of the choice as its text")
        store = partial(self._store_customer_message, incoming=incoming)
        return await write_once(self._db, incoming.platform_message_id, store, self._dispatch)

    def _store_customer_message(
        self, conn: Connection, attempt: Attempt, *, incoming: CustomerMessageIn
    ) -> Delivered:
        channel = self._cache.channel(conn, incoming.channel_id)
        if incoming.platform_message_id:
            find = partial(
                messages.find_message_by_platform_id,
                conn,
                channel.id,
                incoming.platform_message_id,
            )
            if (existing := attempt.earlier(find)) is not None:
                return lookups.replay(conn, existing)
        now = self._clock.now_ms()
        # With a worker to claim for, the lane's lock comes with the sequence number, and the
        # message and its row are then one statement (`queueing.store_message`).
        seq, customer, conversation = lookups.taken_for_customer_message(
            conn,
            channel,
            incoming.customer,
            incoming.thread_id,
            now=now,
            lane_prefix=kinds.CustomerMessage.lane_prefix()
            if self._fresh_rows is not None
            else None,
        )
        # After the conversation's lock, as an erasure takes the two (it deletes the files).
        if not attachments.mark_referenced(conn, incoming.upload_ids, customer.id, now):
            raise AttachmentGone("an attachment of the message is no longer there")
        message = Message(
            id=new_id("msg"),
            channel_id=channel.id,
            conversation_id=conversation.id,
            seq=seq,
            direction="inbound",
            sender="customer",
            text=incoming.text,
            content=text_content(incoming.text)
            if incoming.postback is None
            else rich.choice_content(incoming.text or "", incoming.postback),
            attachments=incoming.attachments,
            author=None,
            platform_message_id=incoming.platform_message_id,
            de_message_id=None,
            status="queued",
            created_at=now,
        )
        held = (message, conversation, customer, channel)  # what the create needs: no read
        delivery = kinds.CustomerMessage(conversation.id, message.id)
        claimed = store_message(
            conn, message, delivery, now=now, fresh_rows=self._fresh_rows, held=held
        )
        return Delivered(message, conversation, customer, claimed=claimed)

    async def customer_typing(
        self, channel_id: str, thread_id: str, *, typing: bool
    ) -> Conversation:
        def tx(conn: Connection) -> Conversation:
            channel = self._cache.channel(conn, channel_id)
            conversation = lookups.open_conversation(conn, channel, thread_id)
            now = self._clock.now_ms()
            restart = lifecycle.idle_deadline_after_agent(channel, self._policy, now)
            if not lifecycle.customer_spoke(conn, conversation, now, restart):
                raise ConversationEnded(f"thread {thread_id!r} has ended")
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
        self,
        channel_id: str,
        message_id: str,
        status: Literal["delivered", "seen"],
        *,
        customer_id: str | None,
    ) -> Message:
        """The platform says the customer received or saw an agent message; tell CXone.
        (`customer_id`: see `lookups.receipt_message`.)"""

        def tx(conn: Connection) -> tuple[Message, bool]:
            channel = self._cache.channel(conn, channel_id)
            message = lookups.receipt_message(conn, channel, message_id, customer_id)
            if not messages.advance_status(conn, message.id, status):
                return message, False  # receipts repeat and race; CXone needs each once
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
        def tx(conn: Connection) -> Customer:
            return lookups.upsert_customer(conn, self._cache.channel(conn, channel_id), profile)

        try:
            return await self._db.run_write(tx)
        except DuplicateError:
            # Another transaction inserted this new customer after ours looked (PostgreSQL):
            # the next one finds it.
            return await self._db.run_write(tx)

    async def customer_active(self, conversation_id: str) -> None:
        """The customer did something short of a message (the "still here" button): a running
        countdown stops, and a reply they owed is owed for another idle timeout."""

        def tx(conn: Connection) -> None:
            conversation = conversations.get_conversation(conn, conversation_id)
            if conversation is None or not conversation.is_open:
                raise ConversationEnded(f"thread {conversation_id!r} has ended")
            channel, now = self._cache.channel(conn, conversation.channel_id), self._clock.now_ms()
            restart = lifecycle.idle_deadline_after_agent(channel, self._policy, now)
            if not lifecycle.customer_spoke(conn, conversation, now, restart):
                raise ConversationEnded(f"thread {conversation_id!r} has ended")

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
            channel = self._cache.channel(conn, channel_id)
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
            channel = self._cache.channel(conn, channel_id)
            customer = lookups.recipient(
                conn, channel, [{"idOnExternalPlatform": customer_ref, "isPrimary": True}]
            )
            conversation = lookups.new_conversation(
                channel.id, customer.id, origin="business", now=self._clock.now_ms()
            )
            conversations.insert_conversation(conn, conversation)
            delivered = store_agent_message(
                conn,
                channel,
                conversation,
                AgentMessageIn(
                    thread_id=conversation.id,
                    de_thread_id=None,
                    de_message_id=None,
                    content=text_content(text),
                    text=text,
                    attachments=[],
                    author=author,
                    brand=None,
                    recipients=[],
                ),
                self._policy,
                self._clock.now_ms(),
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
        self, incoming: AgentMessageIn, *, channel_id: str | None, tenant_id: str
    ) -> Delivered:
        """A reply on a thread the middleware knows (legacy or DFO 3.0 style), for one tenant."""
        store = partial(
            replies.store_reply,
            to=replies.Addressed(incoming, channel_id, tenant_id),
            cache=self._cache,
            policy=self._policy,
            clock=self._clock,
            fresh_rows=self._fresh_rows,
        )
        return await write_once(self._db, incoming.retry_id, store, self._dispatch)

    def _dispatch(self, delivered: Delivered) -> None:
        """After the commit: deliver the row the transaction claimed, or wake the worker."""
        if delivered.claimed is not None and self._fresh_rows is not None:
            self._fresh_rows.dispatch(delivered.claimed)  # on its way without a claim pass
        elif not delivered.duplicate:
            self._on_enqueued()

    async def open_agent_outbound(
        self, incoming: AgentMessageIn, *, channel_id: str, tenant_id: str
    ) -> Delivered:
        """An agent starts a new thread with a customer the platform knows."""

        def tx(conn: Connection, attempt: Attempt) -> Delivered:
            channel = self._cache.tenant_channel(conn, channel_id, tenant_id, incoming.brand)
            if incoming.retry_id:
                find = partial(messages.find_message_by_de_id, conn, channel.id, incoming.retry_id)
                if (existing := attempt.earlier(find)) is not None:
                    return lookups.replay(conn, existing)
            customer = lookups.recipient(conn, channel, incoming.recipients)
            now = self._clock.now_ms()
            # Two messages of a thread CXone has just started, at once (PostgreSQL): the first
            # opens its conversation, the second waits for that and takes it.
            thread, found = incoming.de_thread_id, None
            if thread and conversations.lock_opening(conn, "de:" + thread):
                found = conversations.find_conversation_by_de_thread(conn, thread)
            if found is not None and found.is_open and found.customer_id == customer.id:
                return store_agent_message(conn, channel, found, incoming, self._policy, now)
            conversation = lookups.new_conversation(
                channel.id, customer.id, origin="agent", de_thread_id=thread, now=now
            )
            conversations.insert_conversation(conn, conversation)
            # Ahead of anything else towards CXone on the thread, which may need the contact.
            enqueue(conn, kinds.FindContact(conversation.id), now=now, delay_ms=FIND_CONTACT_MS)
            return store_agent_message(conn, channel, conversation, incoming, self._policy, now)

        return await write_once(self._db, incoming.retry_id, tx, self._dispatch)

    async def validate_recipients(
        self,
        channel_id: str,
        recipients: list[dict[str, Any]],
        *,
        tenant_id: str,
        brand: dict[str, Any] | None,
    ) -> None:
        def read(conn: Connection) -> None:
            channel = self._cache.tenant_channel(conn, channel_id, tenant_id, brand)
            lookups.recipient(conn, channel, recipients)

        await self._db.run_read(read)

    async def agent_typing(
        self,
        channel_id: str,
        thread_id: str,
        *,
        typing: bool,
        tenant_id: str,
        brand: dict[str, Any] | None,
        author: dict[str, Any] | None = None,
    ) -> None:
        def tx(conn: Connection) -> None:
            channel = self._cache.tenant_channel(conn, channel_id, tenant_id, brand)
            conversation = conversations.get_conversation(conn, thread_id)
            if conversation is None or conversation.channel_id != channel.id:
                raise ConversationNotFound(f"no thread {thread_id!r} in channel {channel.id!r}")
            if not conversation.is_open:
                raise ConversationEnded(f"thread {thread_id!r} has ended")
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

    async def channel(self, channel_id: str) -> Channel:
        """The channel, from the short-lived cache when it holds it (`ChannelNotFound` if none)."""
        cached = self._cache.cached_channel(channel_id)
        if cached is not None:
            return cached
        return await self._db.run_read(self._cache.channel, channel_id)
