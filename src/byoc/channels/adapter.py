"""The protocol every platform adapter implements, and the events it is given."""

from __future__ import annotations

from typing import Any, Protocol

from byoc.conversations import rich
from byoc.conversations.models import public_author
from byoc.store.records import Channel, Conversation, Customer, Message


class ChannelAdapter(Protocol):
    """Delivers to a platform. Raises `RetryLater` or `PermanentFailure` on failure."""

    async def deliver_message(
        self, channel: Channel, conversation: Conversation, customer: Customer, message: Message
    ) -> None: ...

    async def deliver_typing(
        self,
        channel: Channel,
        conversation: Conversation,
        customer: Customer,
        typing: bool,
        author: dict[str, Any] | None,
    ) -> None: ...

    async def conversation_ended(
        self, channel: Channel, conversation: Conversation, customer: Customer, reason: str
    ) -> None: ...

    async def idle_changed(
        self,
        channel: Channel,
        conversation: Conversation,
        customer: Customer,
        *,
        warning: bool,
        deadline: int | None,
    ) -> None: ...

    def customer_message_status(self, customer: Customer, message_id: str, status: str) -> None:
        """The customer's own message reached CXone ("sent") or was refused there ("refused"),
        now committed: shown to the customer where the platform shows such things live. Called
        once per message, after the commit; nothing to retry, so it neither waits nor raises."""


def message_view(message: Message) -> dict[str, Any]:
    """A message as platforms see it (webhooks, transcripts, the widget): `content` is CXone's
    `messageContent` as stored, `rich` its versioned view (docs/rich-messages.md) or None, and
    `fallbackText` what to show where rich content cannot be rendered."""
    return {
        "id": message.id,
        "threadId": message.conversation_id,
        "seq": message.seq,
        "direction": message.direction,
        "sender": message.sender,
        "text": message.text,
        "content": message.content,
        "rich": rich.view(message.content),
        "fallbackText": message.text,
        "attachments": message.attachments,
        # Filtered on the way in; also here, for messages stored before it was.
        "author": public_author(message.author),
        "status": message.status,
        "createdAt": message.created_at,
    }
