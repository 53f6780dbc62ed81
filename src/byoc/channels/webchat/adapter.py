"""The web chat adapter: a delivery is a wake-up for the customer's open widgets.

The message itself is already in the store; the widget reads it from there (on this wake-up,
or on its next connect), so a widget that is closed misses nothing.
"""

from __future__ import annotations

from typing import Any

from byoc.bus import LocalBus
from byoc.channels.webchat.protocol import (
    BusEvent,
    EndedEvent,
    MessagesEvent,
    StatusEvent,
    TypingEvent,
)
from byoc.store.records import Channel, Conversation, Customer, Message


class WebchatAdapter:
    def __init__(self, bus: LocalBus) -> None:
        self._bus = bus

    async def deliver_message(
        self, channel: Channel, conversation: Conversation, customer: Customer, message: Message
    ) -> None:
        event: MessagesEvent = {
            "kind": "messages",
            "threadId": conversation.id,
            "messageId": message.id,
            "files": bool(message.attachments),
        }
        self._bus.publish(customer.id, dict(event))

    async def deliver_typing(
        self,
        channel: Channel,
        conversation: Conversation,
        customer: Customer,
        typing: bool,
        author: dict[str, Any] | None,
    ) -> None:
        event: TypingEvent = {
            "kind": "typing",
            "threadId": conversation.id,
            "typing": typing,
            "author": author,
        }
        self._bus.publish(customer.id, dict(event))

    async def conversation_ended(
        self, channel: Channel, conversation: Conversation, customer: Customer, reason: str
    ) -> None:
        event: EndedEvent = {"kind": "ended", "threadId": conversation.id, "reason": reason}
        self._bus.publish(customer.id, dict(event))

    async def idle_changed(
        self,
        channel: Channel,
        conversation: Conversation,
        customer: Customer,
        *,
        warning: bool,
        deadline: int | None,
    ) -> None:
        event: BusEvent
        if warning:
            event = {
                "kind": "idle_warning",
                "threadId": conversation.id,
                "deadline": deadline,
            }
        else:
            event = {"kind": "idle_cleared", "threadId": conversation.id}
        self._bus.publish(customer.id, dict(event))

    def customer_message_status(self, customer: Customer, message_id: str, status: str) -> None:
        event: StatusEvent = {"kind": "status", "messageId": message_id, "status": status}
        self._bus.publish(customer.id, dict(event))
