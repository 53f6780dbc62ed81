"""Outbox handlers: how each kind of row is delivered to CXone or to a platform.

This is the one place where CXone client errors become outbox decisions (`cxone_call`):
unavailable → retry later (honouring Retry-After), rejected → dead letter. A 409 is success
where the call asks for a state CXone may already hold (a message with our id, a contact
that has ended) and a rejection, dead-lettered at once with its reason, everywhere else.

A customer message is forwarded only while CXone holds the conversation open (contract §3.6:
neither its contact ended nor its thread closed). CXone is asked before the create unless it
said so less than `end_check_min_interval_ms` ago, by an end check or by the previous create
landing on the conversation's contact. A create that lands on another contact asks CXone
about the previous one before adopting the new one: when it has ended, the agent closed it
while the message was on its way, and the new contact is closed at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from byoc.bus import LocalBus
from byoc.channels.adapter import ChannelAdapter
from byoc.channels.attachment_store import AttachmentRehoster
from byoc.clock import Clock, SystemClock
from byoc.conversations import lifecycle
from byoc.conversations import service as kinds
from byoc.conversations.ended_in_cxone import contact_ended, why_ended
from byoc.conversations.lifecycle import LifecycleLoops
from byoc.cxone import (
    ENDED_CONTACT_STATUSES,
    Attachment,
    CreateMessage,
    CreateMessageResponse,
    CustomFieldValue,
    CxoneAuthError,
    CxoneConflict,
    CxoneError,
    CxoneRejected,
    CxoneUnavailable,
    EndUserIdentity,
    MessageContent,
    OutboundMessage,
    Recipient,
    ThreadRef,
    iso_millis,
)
from byoc.outbox import PermanentFailure, RetryLater
from byoc.outbox.rows import enqueue
from byoc.outbox.worker import DeadLetterHook, Handler, Settle, Settled
from byoc.store import Connection, Database, channels, conversations, messages
from byoc.store.records import Channel, Conversation, Customer, Message, OutboxRow
from byoc.tenancy import TenantClients

log = logging.getLogger(__name__)


@asynccontextmanager
async def cxone_call(what: str, *, conflict_is_success: bool = False) -> AsyncIterator[None]:
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
    except CxoneRejected as exc:
        raise PermanentFailure(f"{what}: {exc}") from exc
    except CxoneError as exc:
        # An answer we could not read: the call may have worked, and every call is
        # idempotent on our ids, so trying again is safe.
        raise RetryLater(f"{what}: {exc}") from exc


def _ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Loaded:
    channel: Channel
    conversation: Conversation
    customer: Customer
    message: Message | None


class Deliveries:
    def __init__(
        self,
        db: Database,
        tenants: TenantClients,
        adapters: Mapping[str, ChannelAdapter],
        bus: LocalBus,
        lifecycle: LifecycleLoops,
        *,
        end_check_min_interval_ms: int = 1000,
        rehoster: AttachmentRehoster | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._rehoster = rehoster
        self._clock: Clock = clock or SystemClock()
        self._db = db
        self._tenants = tenants
        self._adapters = adapters
        self._bus = bus
        self._lifecycle = lifecycle
        self._end_check_min_interval_ms = end_check_min_interval_ms

    def handlers(self) -> dict[str, Handler]:
        return {
            kinds.CXONE_CREATE_MESSAGE: self.create_message,
            kinds.CXONE_MESSAGE_STATUS: self.message_status,
            kinds.CXONE_TYPING: self.customer_typing,
            kinds.PLATFORM_MESSAGE: self.platform_message,
            kinds.PLATFORM_TYPING: self.platform_typing,
            kinds.PLATFORM_ENDED: self.platform_ended,
            kinds.CXONE_OUTBOUND: self.business_outbound,
            lifecycle.CXONE_SYSTEM_MESSAGE: self.system_message,
            lifecycle.CXONE_END_CONTACT: self.end_contact,
            lifecycle.PLATFORM_IDLE: self.platform_idle,
        }

    def dead_letter_hooks(self) -> dict[str, DeadLetterHook]:
        return {
            kinds.CXONE_CREATE_MESSAGE: self._customer_message_failed,
            kinds.PLATFORM_MESSAGE: self._agent_message_failed,
        }

    # --- towards CXone -------------------------------------------------------------------------

    async def create_message(self, row: OutboxRow) -> Settled:
        loaded = await self._load(message_id=str(row.payload["message_id"]))
        message = loaded.message
        assert message is not None
        customer = loaded.customer
        conversation, channel = loaded.conversation, loaded.channel
        # After a failed attempt the message may be in CXone already, on a contact it opened
        # after the agent's close: only the create's answer names that contact, so it is asked.
        if row.attempts == 0 and await self._ended_in_cxone(conversation, channel):
            # The agent closed the conversation: forwarding would open a new case behind the
            # agent's back. The customer is told the conversation is over instead.
            return self._refused(customer.id, message.id)
        body = CreateMessage(
            id_on_external_platform=message.id,
            thread=ThreadRef(id_on_external_platform=conversation.id),
            message_content=MessageContent.model_validate(message.content),
            author_end_user_identity=EndUserIdentity(
                id_on_external_platform=customer.id,
                first_name=customer.first_name,
                last_name=customer.last_name,
                nickname=customer.nickname,
                image=customer.image,
                custom_fields=[CustomFieldValue.model_validate(f) for f in customer.custom_fields]
                if customer.custom_fields
                else None,
            ),
            created_at_with_milliseconds=iso_millis(_ms_to_datetime(message.created_at)),
            attachments=[Attachment.model_validate(a) for a in message.attachments] or None,
        )
        de = await self._tenants.for_tenant(channel.tenant_id)
        try:
            async with cxone_call(f"create message {message.id}"):
                response = await de.create_message(channel.id, body)
        except PermanentFailure:
            # A thread closed in CXone since the last check refuses the message: that is the
            # end of the conversation, not a message to dead-letter.
            if await self._ended_in_cxone(conversation, channel, fresh=True):
                return self._refused(customer.id, message.id)
            raise
        answered_at = self._clock.now_ms()
        contact_id = response.consumer_contact.id
        previous = conversation.de_contact_id
        if previous is not None and contact_id != previous:
            # DE opens a new contact when a message arrives on a thread whose contact has
            # ended: the agent may have closed it between the check and the create.
            async with cxone_call(f"contact status of {previous}"):
                status = await contact_ended(de, previous)
            if status is not None:
                log.info(
                    "contact %s ended in CXone while message %s was on its way; closing the"
                    " contact %s it opened",
                    previous,
                    message.id,
                    contact_id,
                )
                refused = self._refused(customer.id, message.id)
                write = refused.write
                assert write is not None

                def raced(conn: Connection) -> None:
                    write(conn)
                    lifecycle.end_with_stray_contact(conn, conversation, contact_id, answered_at)

                return Settled(write=raced, after_commit=refused.after_commit)
        updates: dict[str, object] = {}
        if contact_id != previous:
            updates["de_contact_id"] = contact_id
        de_thread = response.consumer_contact.thread_id or response.message.thread_id
        if de_thread and conversation.de_thread_id is None:
            updates["de_thread_id"] = de_thread

        # DE took the message on the contact it now holds for the conversation, so that
        # contact was open and the thread took messages: as good as an end check.
        confirmed = response.consumer_contact.status not in ENDED_CONTACT_STATUSES

        def sent(conn: Connection) -> None:
            messages.set_message_status(conn, message.id, "sent")
            if updates:  # the first message of a contact; later ones change nothing here
                conversations.update_conversation(conn, conversation.id, **updates)
            if confirmed:
                conversations.mark_checked_in_cxone(conn, conversation.id, answered_at)

        # Written with the row's deletion, by the worker; the customer hears of it once that
        # has committed.
        return Settled(
            write=sent,
            after_commit=partial(self._publish_status, customer.id, message.id, "sent"),
        )

    def _refused(self, customer_id: str, message_id: str) -> Settled:
        return Settled(
            write=partial(messages.set_message_status, message_id=message_id, status="refused"),
            after_commit=partial(self._publish_status, customer_id, message_id, "refused"),
        )

    def _publish_status(self, customer_id: str, message_id: str, status: str) -> None:
        self._bus.publish(
            customer_id, {"kind": "status", "messageId": message_id, "status": status}
        )

    async def message_status(self, row: OutboxRow) -> None:
        loaded = await self._load(message_id=str(row.payload["message_id"]))
        assert loaded.message is not None
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        status = str(row.payload["status"])
        async with cxone_call(f"status {status} of {loaded.message.id}"):
            await de.update_message_status(
                loaded.channel.id,
                loaded.message.id,
                status,  # type: ignore[arg-type]  # written by the service from a Literal
                updated_at=_ms_to_datetime(int(row.payload["at"])),
                reason=row.payload.get("reason"),
            )

    async def customer_typing(self, row: OutboxRow) -> None:
        loaded = await self._load(conversation_id=str(row.payload["conversation_id"]))
        if loaded.conversation.de_contact_id is None:
            return  # CXone has no thread yet: nobody to show the indicator to
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        try:
            async with cxone_call("customer typing"):
                await de.sender_action(
                    loaded.channel.id, loaded.conversation.id, row.payload["action"]
                )
        except PermanentFailure as exc:
            log.info("typing indicator refused by CXone, dropped: %s", exc)

    async def _ended_in_cxone(
        self, conversation: Conversation, channel: Channel, *, fresh: bool = False
    ) -> bool:
        """Whether the conversation has ended. CXone is asked (its contact and its thread) unless
        it said the conversation was open less than the minimum interval ago (an end check, or
        a create that landed on the conversation's contact), or in any case when `fresh`."""
        if not conversation.is_open:
            return True
        contact_id = conversation.de_contact_id
        if contact_id is None:
            return False  # CXone has not seen the thread yet
        checked = conversation.de_checked_at or 0
        if not fresh and self._clock.now_ms() - checked < self._end_check_min_interval_ms:
            return False
        async with cxone_call(f"end check of {conversation.id}"):
            de = await self._tenants.for_tenant(channel.tenant_id)
            why = await why_ended(de, channel.id, conversation.id, contact_id)
        # An open answer is not written here: the create that follows records a later one.
        if why is None:
            return False
        return await self._lifecycle.ended_in_cxone(conversation, why, self._clock.now_ms())

    async def system_message(self, row: OutboxRow) -> None:
        """A message from the middleware (idle warning, closing note), so the agent sees it."""
        await self._send_outbound(row, what="system message")

    async def business_outbound(self, row: OutboxRow) -> None:
        """A business-initiated message on a new thread (contract §3.5)."""
        response = await self._send_outbound(row, what="outbound")
        if response is None:
            return
        loaded = await self._load(message_id=str(row.payload["message_id"]))
        updates: dict[str, object] = {"de_contact_id": response.consumer_contact.id}
        de_thread = response.consumer_contact.thread_id or response.message.thread_id
        if de_thread and loaded.conversation.de_thread_id is None:
            updates["de_thread_id"] = de_thread
        await self._db.run_write(
            lambda conn: conversations.update_conversation(conn, loaded.conversation.id, **updates)
        )

    async def _send_outbound(self, row: OutboxRow, *, what: str) -> CreateMessageResponse | None:
        loaded = await self._load(message_id=str(row.payload["message_id"]))
        message = loaded.message
        assert message is not None
        body = OutboundMessage(
            id_on_external_platform=message.id,
            thread=ThreadRef(id_on_external_platform=loaded.conversation.id),
            message_content=MessageContent.model_validate(message.content),
            recipients=[
                Recipient(
                    id_on_external_platform=loaded.customer.id,
                    name=loaded.customer.first_name,
                    is_primary=True,
                    is_private=False,
                )
            ],
        )
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        async with cxone_call(f"{what} {message.id}", conflict_is_success=True):
            return await de.send_outbound(loaded.channel.id, body)
        return None  # a conflict: CXone holds this message already

    async def end_contact(self, row: OutboxRow) -> None:
        """End the interaction in CXone (contract §3.6) the way the deployment chose."""
        loaded = await self._load(conversation_id=str(row.payload["conversation_id"]))
        # A contact other than the conversation's own: one a late message opened by mistake.
        contact_id = row.payload.get("contact_id") or loaded.conversation.de_contact_id
        if contact_id is None:
            return
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        action = str(row.payload["action"])
        # A 409 here means the contact has ended already: what was asked for.
        async with cxone_call(f"end contact {contact_id} ({action})", conflict_is_success=True):
            if action == "abandon":
                await de.abandon_contact(contact_id, "expired")
            elif action == "thread":
                await de.update_thread(
                    loaded.channel.id, loaded.conversation.id, can_add_more_messages=False
                )
            else:
                await de.set_contact_status(
                    contact_id, "resolved" if action == "resolve" else "closed"
                )

    # --- towards the platform ------------------------------------------------------------------

    async def platform_message(self, row: OutboxRow) -> Settle | None:
        loaded = await self._load(message_id=str(row.payload["message_id"]))
        assert loaded.message is not None
        adapter = self._adapter(loaded.channel)
        message = loaded.message
        if self._rehoster is not None:
            message = await self._rehoster.rehost(message, loaded.customer)
        await adapter.deliver_message(loaded.channel, loaded.conversation, loaded.customer, message)
        if message.status == "queued":
            # Written with the row's deletion, by the worker.
            return lambda conn: messages.set_message_status(conn, message.id, "sent")
        return None

    async def platform_typing(self, row: OutboxRow) -> None:
        loaded = await self._load(conversation_id=str(row.payload["conversation_id"]))
        await self._adapter(loaded.channel).deliver_typing(
            loaded.channel,
            loaded.conversation,
            loaded.customer,
            bool(row.payload["typing"]),
            row.payload.get("author"),
        )

    async def platform_idle(self, row: OutboxRow) -> None:
        loaded = await self._load(conversation_id=str(row.payload["conversation_id"]))
        deadline = row.payload.get("deadline")
        await self._adapter(loaded.channel).idle_changed(
            loaded.channel,
            loaded.conversation,
            loaded.customer,
            warning=bool(row.payload["warning"]),
            deadline=int(deadline) if deadline is not None else None,
        )

    async def platform_ended(self, row: OutboxRow) -> None:
        loaded = await self._load(conversation_id=str(row.payload["conversation_id"]))
        await self._adapter(loaded.channel).conversation_ended(
            loaded.channel, loaded.conversation, loaded.customer, str(row.payload["reason"])
        )

    # --- dead letters ----------------------------------------------------------------------------

    def _customer_message_failed(self, conn: Connection, row: OutboxRow, _error: str) -> None:
        messages.set_message_status(conn, str(row.payload["message_id"]), "failed")

    def _agent_message_failed(self, conn: Connection, row: OutboxRow, error: str) -> None:
        """The customer never got the agent's message: say so to CXone, so the agent sees it."""
        message = messages.get_message(conn, str(row.payload["message_id"]))
        if message is None:
            return
        messages.set_message_status(conn, message.id, "failed")
        now = self._clock.now_ms()
        enqueue(
            conn,
            lane=kinds.cxone_lane(message.conversation_id),
            kind=kinds.CXONE_MESSAGE_STATUS,
            payload={
                "message_id": message.id,
                "status": "failed",
                "at": now,
                "reason": error[:500],
            },
            now=now,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _adapter(self, channel: Channel) -> ChannelAdapter:
        adapter = self._adapters.get(channel.adapter)
        if adapter is None:
            raise PermanentFailure(f"no adapter {channel.adapter!r} for channel {channel.id!r}")
        return adapter

    async def _load(
        self, *, message_id: str | None = None, conversation_id: str | None = None
    ) -> Loaded:
        return await self._db.run_read(
            partial(_load, message_id=message_id, conversation_id=conversation_id)
        )


def _load(conn: Connection, *, message_id: str | None, conversation_id: str | None) -> Loaded:
    """What a handler needs about a row, in one read transaction."""
    message = None
    if message_id is not None:
        found = messages.get_message_in_context(conn, message_id)
        if found is None:
            raise PermanentFailure(f"message {message_id!r} no longer exists")
        message, conversation, customer = found
    else:
        assert conversation_id is not None
        both = conversations.get_conversation_and_customer(conn, conversation_id)
        if both is None:
            raise PermanentFailure(f"conversation {conversation_id!r} no longer exists")
        conversation, customer = both
    channel = channels.get_channel(conn, conversation.channel_id)
    if channel is None:
        raise PermanentFailure(f"channel {conversation.channel_id!r} was deleted")
    return Loaded(channel=channel, conversation=conversation, customer=customer, message=message)
