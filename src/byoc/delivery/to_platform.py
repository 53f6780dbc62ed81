"""Deliveries towards the platform, through the channel's adapter: messages, typing, the idle
countdown, the end of a conversation. An adapter raises the `byoc.outbox.errors` tree."""

from __future__ import annotations

from collections.abc import Mapping

from byoc.channels.adapter import ChannelAdapter
from byoc.channels.attachment_store import AttachmentRehoster
from byoc.clock import Clock, SystemClock
from byoc.delivery.common import Loaded, load, preloaded
from byoc.outbox import PermanentFailure, kinds
from byoc.outbox.kinds import enqueue
from byoc.outbox.outcome import Outcome, Settled, Together
from byoc.store import Connection, Database, messages
from byoc.store.records import Channel, OutboxRow


class ToPlatform:
    def __init__(
        self,
        db: Database,
        adapters: Mapping[str, ChannelAdapter],
        *,
        rehoster: AttachmentRehoster | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._adapters = adapters
        self._rehoster = rehoster
        self._clock: Clock = clock or SystemClock()

    async def message(self, payload: kinds.AgentMessage, row: OutboxRow) -> Outcome:
        # Held by the transaction that stored the message and claimed its row, if it did.
        loaded = preloaded(row, payload.message_id) or await self._load(
            message_id=payload.message_id
        )
        assert loaded.message is not None
        adapter = self._adapter(loaded.channel)
        message = loaded.message
        if self._rehoster is not None:
            message = await self._rehoster.rehost(message, loaded.customer)
        await adapter.deliver_message(loaded.channel, loaded.conversation, loaded.customer, message)
        if message.status == "queued":
            # Written with the row's deletion, by the worker: one UPDATE for all the messages
            # its pass settles.
            return Settled(write=Together(messages.mark_sent, message.id))
        return Settled()

    async def typing(self, payload: kinds.AgentTyping, _row: OutboxRow) -> Outcome:
        loaded = await self._load(conversation_id=payload.conversation_id)
        await self._adapter(loaded.channel).deliver_typing(
            loaded.channel, loaded.conversation, loaded.customer, payload.typing, payload.author
        )
        return Settled()

    async def idle(self, payload: kinds.IdleChanged, _row: OutboxRow) -> Outcome:
        loaded = await self._load(conversation_id=payload.conversation_id)
        await self._adapter(loaded.channel).idle_changed(
            loaded.channel,
            loaded.conversation,
            loaded.customer,
            warning=payload.warning,
            deadline=payload.deadline,
        )
        return Settled()

    async def ended(self, payload: kinds.ConversationEnded, _row: OutboxRow) -> Outcome:
        loaded = await self._load(conversation_id=payload.conversation_id)
        await self._adapter(loaded.channel).conversation_ended(
            loaded.channel, loaded.conversation, loaded.customer, payload.reason
        )
        return Settled()

    # --- dead letters ----------------------------------------------------------------------------

    def message_failed(self, conn: Connection, payload: kinds.AgentMessage, error: str) -> None:
        """The customer never got the agent's message: say so to CXone, so the agent sees it."""
        message = messages.get_message(conn, payload.message_id)
        if message is None or not messages.advance_status(conn, message.id, "failed"):
            return  # erased, or a receipt says the platform has it after all
        now = self._clock.now_ms()
        enqueue(
            conn,
            kinds.MessageStatus(
                message.conversation_id,
                message_id=message.id,
                status="failed",
                at=now,
                reason=error[:500],
            ),
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
        return await load(self._db, message_id=message_id, conversation_id=conversation_id)
