"""Deliveries towards CXone: customer messages, receipts, typing, outbound and system
messages, ended contacts. CXone errors become outcomes in `byoc.delivery.common.cxone_call`.

A customer message is forwarded only while CXone holds the conversation open (contract §3.6:
neither its contact ended nor its thread closed). CXone is asked before the create unless it
said so, by an end check or by the previous create landing on the conversation's contact, less
than `end_check_min_interval_ms` before the message arrived: the customer wrote into an open
conversation. Counting from the arrival rather than the delivery keeps a backlog from adding
the check's two calls to every message just when CXone or the middleware is slow already.
A create that lands on another contact asks CXone about the previous one before adopting the
new one: when it has ended, the agent closed it while the message was on its way, and the new
contact is closed at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial

from byoc.channels.adapter import ChannelAdapter
from byoc.clock import Clock, SystemClock
from byoc.conversations import lifecycle
from byoc.conversations.ended_in_cxone import contact_ended, why_ended
from byoc.conversations.lifecycle import LifecycleLoops
from byoc.cxone import (
    ENDED_CONTACT_STATUSES,
    Attachment,
    CreateMessage,
    CreateMessageResponse,
    CustomFieldValue,
    EndUserIdentity,
    MessageContent,
    OutboundMessage,
    Recipient,
    ThreadRef,
    iso_millis,
)
from byoc.delivery.common import Loaded, cxone_call, load, ms_to_datetime, preloaded
from byoc.delivery.contacts import take_contact
from byoc.outbox import PermanentFailure, kinds
from byoc.outbox.outcome import Outcome, Settled
from byoc.store import Connection, Database, conversations, messages
from byoc.store.records import Channel, Conversation, Customer, OutboxRow
from byoc.tenancy import TenantClients

log = logging.getLogger(__name__)

# CXone learns an agent message's id on our side from our answer to its reply callback, and may
# record it a moment after we answered: a status sent that soon (a platform that refuses or
# delivers at once) can find the message not yet known. Within this time of the message's
# creation a 404 is retried, not dead-lettered.
STATUS_BEFORE_CXONE_KNOWS_MS = 60_000


class ToCxone:
    def __init__(
        self,
        db: Database,
        tenants: TenantClients,
        adapters: Mapping[str, ChannelAdapter],
        lifecycle: LifecycleLoops,
        *,
        end_check_min_interval_ms: int = 1000,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._db = db
        self._tenants = tenants
        self._adapters = adapters
        self._lifecycle = lifecycle
        self._end_check_min_interval_ms = end_check_min_interval_ms

    async def create_message(self, payload: kinds.CustomerMessage, row: OutboxRow) -> Outcome:
        # Held by the transaction that stored the message and claimed its row, if it did (the
        # conversation as its own UPDATE left it, locked till the commit): the row headed its
        # lane, so every earlier create had written its contact and its check.
        # What changes the conversation outside the lane (an ending) is a race the read after
        # the commit had too; the create's answer settles it (a new contact: the check below).
        loaded = preloaded(row, payload.message_id) or await self._load(
            message_id=payload.message_id
        )
        message = loaded.message
        assert message is not None
        customer = loaded.customer
        conversation, channel = loaded.conversation, loaded.channel
        # After a failed attempt the message may be in CXone already, on a contact it opened
        # after the agent's close: only the create's answer names that contact, so it is asked.
        if row.attempts == 0 and await self._ended_in_cxone(
            conversation, channel, arrived_at=message.created_at
        ):
            # The agent closed the conversation: forwarding would open a new case behind the
            # agent's back. The customer is told the conversation is over instead.
            return self._refused(channel, customer, message.id)
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
            created_at_with_milliseconds=iso_millis(ms_to_datetime(message.created_at)),
            attachments=[Attachment.model_validate(a) for a in message.attachments] or None,
        )
        de = await self._tenants.for_tenant(channel.tenant_id)
        try:
            async with cxone_call(f"create message {message.id}"):
                response = await de.create_message(channel.id, body)
        except PermanentFailure:
            # A thread closed in CXone since the last check refuses the message: that is the
            # end of the conversation, not a message to dead-letter.
            if await self._ended_in_cxone(conversation, channel):
                return self._refused(channel, customer, message.id)
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
                refused = self._refused(channel, customer, message.id)
                write = refused.write
                assert callable(write)  # a `Settle` (`_refused`)

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
        return Settled(write=sent, after_commit=self._shown(channel, customer, message.id, "sent"))

    def _refused(self, channel: Channel, customer: Customer, message_id: str) -> Settled:
        return Settled(
            write=partial(messages.set_message_status, message_id=message_id, status="refused"),
            after_commit=self._shown(channel, customer, message_id, "refused"),
        )

    def _shown(
        self, channel: Channel, customer: Customer, message_id: str, status: str
    ) -> Callable[[], None]:
        """The customer's view of their message's status, once it is committed: the channel's
        adapter's to show (a widget's tick; a webhook platform shows none)."""
        adapter = self._adapters[channel.adapter]  # one for every name: `every_adapter`
        return partial(adapter.customer_message_status, customer, message_id, status)

    async def message_status(self, payload: kinds.MessageStatus, _row: OutboxRow) -> Outcome:
        loaded = await self._load(message_id=payload.message_id)
        assert loaded.message is not None
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        status = payload.status
        young = self._clock.now_ms() - loaded.message.created_at < STATUS_BEFORE_CXONE_KNOWS_MS
        async with cxone_call(f"status {status} of {loaded.message.id}", not_found_yet=young):
            await de.update_message_status(
                loaded.channel.id,
                loaded.message.id,
                status,  # type: ignore[arg-type]  # written by the service from a Literal
                updated_at=ms_to_datetime(payload.at),
                reason=payload.reason,
            )
        return Settled()

    async def customer_typing(self, payload: kinds.CustomerTyping, _row: OutboxRow) -> Outcome:
        loaded = await self._load(conversation_id=payload.conversation_id)
        if loaded.conversation.de_contact_id is None:
            return Settled()  # CXone has no thread yet: nobody to show the indicator to
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        try:
            async with cxone_call("customer typing"):
                await de.sender_action(
                    loaded.channel.id,
                    loaded.conversation.id,
                    payload.action,  # type: ignore[arg-type]  # written by the service
                )
        except PermanentFailure as exc:
            log.info("typing indicator refused by CXone, dropped: %s", exc)
        return Settled()

    async def _ended_in_cxone(
        self, conversation: Conversation, channel: Channel, *, arrived_at: int | None = None
    ) -> bool:
        """Whether the conversation has ended. CXone is asked (its contact and its thread) unless
        it said the conversation was open (an end check, or a create that landed on the
        conversation's contact) less than the minimum interval before `arrived_at`, the
        arrival of the message to forward; always when that is None."""
        if not conversation.is_open:
            return True
        contact_id = conversation.de_contact_id
        if contact_id is None:
            return False  # CXone has not seen the thread yet
        checked = conversation.de_checked_at or 0
        if arrived_at is not None and arrived_at - checked < self._end_check_min_interval_ms:
            return False
        async with cxone_call(f"end check of {conversation.id}"):
            de = await self._tenants.for_tenant(channel.tenant_id)
            why = await why_ended(de, channel.id, conversation.id, contact_id)
        # An open answer is not written here: the create that follows records a later one.
        if why is None:
            return False
        return await self._lifecycle.ended_in_cxone(conversation, why, self._clock.now_ms())

    async def system_message(self, payload: kinds.SystemMessage, _row: OutboxRow) -> Outcome:
        """A message from the middleware (idle warning, closing note), so the agent sees it.
        DE takes it on a new contact when the conversation's own has ended (an agent's close
        the poll has not reached yet): that contact is closed and the conversation ends here,
        as for a customer message that raced the close (`lifecycle.end_with_stray_contact`).
        On an agent's thread whose contact was not learnt (`byoc.delivery.contacts`), the
        contact DE names is taken as the thread's, so the idle end closes it."""
        response = await self._send_outbound(payload.message_id, what="system message")
        if response is None:
            return Settled()
        loaded = await self._load(message_id=payload.message_id)
        conversation = loaded.conversation
        stray, previous = response.consumer_contact.id, conversation.de_contact_id
        if previous is None:  # an agent's thread whose contact was not learnt: this one is it
            return Settled(
                write=partial(take_contact, conversation_id=conversation.id, contact_id=stray)
            )
        if stray == previous:
            return Settled()
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        async with cxone_call(f"contact status of {previous}"):
            status = await contact_ended(de, previous)
        at = self._clock.now_ms()
        if status is None:  # the conversation's contact is open: DE moved it to this one
            adopt = partial(
                conversations.update_conversation,
                conversation_id=conversation.id,
                de_contact_id=stray,
            )
            return Settled(write=adopt)
        log.info(
            "contact %s %s; closing the contact %s a system message opened", previous, status, stray
        )

        def ended(conn: Connection) -> None:
            lifecycle.end_with_stray_contact(conn, conversation, stray, at)

        return Settled(write=ended)

    async def business_outbound(self, payload: kinds.BusinessOutbound, _row: OutboxRow) -> Outcome:
        """A business-initiated message on a new thread (contract §3.5)."""
        response = await self._send_outbound(payload.message_id, what="outbound")
        if response is None:
            return Settled()
        loaded = await self._load(message_id=payload.message_id)
        updates: dict[str, object] = {"de_contact_id": response.consumer_contact.id}
        de_thread = response.consumer_contact.thread_id or response.message.thread_id
        if de_thread and loaded.conversation.de_thread_id is None:
            updates["de_thread_id"] = de_thread
        await self._db.run_write(
            lambda conn: conversations.update_conversation(conn, loaded.conversation.id, **updates)
        )
        return Settled()

    async def _send_outbound(self, message_id: str, *, what: str) -> CreateMessageResponse | None:
        loaded = await self._load(message_id=message_id)
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

    async def end_contact(self, payload: kinds.EndContact, _row: OutboxRow) -> Outcome:
        """End the interaction in CXone (contract §3.6) the way the deployment chose."""
        loaded = await self._load(conversation_id=payload.conversation_id)
        # A contact other than the conversation's own: one a late message opened by mistake.
        contact_id = payload.contact_id or loaded.conversation.de_contact_id
        if contact_id is None:
            return Settled()
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        action = payload.action
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
        return Settled()

    # --- dead letters ----------------------------------------------------------------------------

    def customer_message_failed(
        self, conn: Connection, payload: kinds.CustomerMessage, _error: str
    ) -> None:
        messages.set_message_status(conn, payload.message_id, "failed")

    # --- helpers -------------------------------------------------------------------------------

    async def _load(
        self, *, message_id: str | None = None, conversation_id: str | None = None
    ) -> Loaded:
        return await load(self._db, message_id=message_id, conversation_id=conversation_id)
