"""Outbox handlers: how each kind of row is delivered to CXone or to a platform.

This is the one place where CXone client errors become outbox decisions:
unavailable → retry later (honouring Retry-After), rejected → dead letter, a conflict on
create → already delivered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from byoc.channels.adapter import ChannelAdapter
from byoc.conversations import service as kinds
from byoc.cxone import (
    Attachment,
    CreateMessage,
    CustomFieldValue,
    CxoneAuthError,
    CxoneConflict,
    CxoneError,
    CxoneRejected,
    CxoneUnavailable,
    EndUserIdentity,
    MessageContent,
    ThreadRef,
    iso_millis,
)
from byoc.outbox import PermanentFailure, RetryLater, enqueue
from byoc.outbox.worker import DeadLetterHook, Handler
from byoc.store import Database, now_ms
from byoc.store import repositories as repo
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
    except CxoneConflict:
        if not conflict_is_success:
            raise
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
        self, db: Database, tenants: TenantClients, adapters: Mapping[str, ChannelAdapter]
    ) -> None:
        self._db = db
        self._tenants = tenants
        self._adapters = adapters

    def handlers(self) -> dict[str, Handler]:
        return {
            kinds.CXONE_CREATE_MESSAGE: self.create_message,
            kinds.CXONE_MESSAGE_STATUS: self.message_status,
            kinds.CXONE_TYPING: self.customer_typing,
            kinds.PLATFORM_MESSAGE: self.platform_message,
            kinds.PLATFORM_TYPING: self.platform_typing,
            kinds.PLATFORM_ENDED: self.platform_ended,
        }

    def dead_letter_hooks(self) -> dict[str, DeadLetterHook]:
        return {
            kinds.CXONE_CREATE_MESSAGE: self._customer_message_failed,
            kinds.PLATFORM_MESSAGE: self._agent_message_failed,
        }

    # --- towards CXone -------------------------------------------------------------------------

    async def create_message(self, row: OutboxRow) -> None:
        loaded = await self._load(message_id=str(row.payload["message_id"]))
        message = loaded.message
        assert message is not None
        customer = loaded.customer
        body = CreateMessage(
            id_on_external_platform=message.id,
            thread=ThreadRef(id_on_external_platform=loaded.conversation.id),
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
        de = await self._tenants.for_tenant(loaded.channel.tenant_id)
        async with cxone_call(f"create message {message.id}"):
            response = await de.create_message(loaded.channel.id, body)
        async with self._db.write() as conn:
            await repo.set_message_status(conn, message.id, "sent")
            updates: dict[str, object] = {"de_contact_id": response.consumer_contact.id}
            de_thread = response.consumer_contact.thread_id or response.message.thread_id
            if de_thread and loaded.conversation.de_thread_id is None:
                updates["de_thread_id"] = de_thread
            await repo.update_conversation(conn, loaded.conversation.id, **updates)

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

    # --- towards the platform ------------------------------------------------------------------

    async def platform_message(self, row: OutboxRow) -> None:
        loaded = await self._load(message_id=str(row.payload["message_id"]))
        assert loaded.message is not None
        adapter = self._adapter(loaded.channel)
        await adapter.deliver_message(
            loaded.channel, loaded.conversation, loaded.customer, loaded.message
        )
        async with self._db.write() as conn:
            if loaded.message.status == "queued":
                await repo.set_message_status(conn, loaded.message.id, "sent")

    async def platform_typing(self, row: OutboxRow) -> None:
        loaded = await self._load(conversation_id=str(row.payload["conversation_id"]))
        await self._adapter(loaded.channel).deliver_typing(
            loaded.channel, loaded.conversation, loaded.customer, bool(row.payload["typing"])
        )

    async def platform_ended(self, row: OutboxRow) -> None:
        loaded = await self._load(conversation_id=str(row.payload["conversation_id"]))
        await self._adapter(loaded.channel).conversation_ended(
            loaded.channel, loaded.conversation, loaded.customer, str(row.payload["reason"])
        )

    # --- dead letters ----------------------------------------------------------------------------

    async def _customer_message_failed(
        self, conn: AsyncConnection, row: OutboxRow, _error: str
    ) -> None:
        await repo.set_message_status(conn, str(row.payload["message_id"]), "failed")

    async def _agent_message_failed(
        self, conn: AsyncConnection, row: OutboxRow, error: str
    ) -> None:
        """The customer never got the agent's message: say so to CXone, so the agent sees it."""
        message = await repo.get_message(conn, str(row.payload["message_id"]))
        if message is None:
            return
        await repo.set_message_status(conn, message.id, "failed")
        await enqueue(
            conn,
            lane=kinds.cxone_lane(message.conversation_id),
            kind=kinds.CXONE_MESSAGE_STATUS,
            payload={
                "message_id": message.id,
                "status": "failed",
                "at": now_ms(),
                "reason": error[:500],
            },
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
        async with self._db.read() as conn:
            message = None
            if message_id is not None:
                message = await repo.get_message(conn, message_id)
                if message is None:
                    raise PermanentFailure(f"message {message_id!r} no longer exists")
                conversation_id = message.conversation_id
            assert conversation_id is not None
            conversation = await repo.get_conversation(conn, conversation_id)
            if conversation is None:
                raise PermanentFailure(f"conversation {conversation_id!r} no longer exists")
            channel = await repo.get_channel(conn, conversation.channel_id)
            if channel is None:
                raise PermanentFailure(f"channel {conversation.channel_id!r} was deleted")
            customer = await repo.get_customer(conn, conversation.customer_id)
            assert customer is not None
        return Loaded(
            channel=channel, conversation=conversation, customer=customer, message=message
        )
