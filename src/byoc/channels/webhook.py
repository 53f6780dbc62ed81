"""The generic adapter: signed JSON webhooks to the platform's URL."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from byoc.channels.adapter import message_view
from byoc.channels.signing import signed_headers
from byoc.http import HttpClient, HttpError, HttpRefusedAddress
from byoc.outbox import PermanentFailure, RetryLater
from byoc.store import now_ms
from byoc.store.records import Channel, Conversation, Customer, Message

# A platform's answer is read for its status; its body only names a refusal.
MAX_ANSWER_BYTES = 64 * 1024


class WebhookAdapter:
    def __init__(self, http: HttpClient, *, timeout: float) -> None:
        self._http = http
        self._timeout = timeout

    async def deliver_message(
        self, channel: Channel, conversation: Conversation, customer: Customer, message: Message
    ) -> None:
        await self._post(
            channel,
            "message.created",
            f"evt_{message.id}",
            conversation,
            customer,
            {"message": message_view(message)},
        )

    async def deliver_typing(
        self,
        channel: Channel,
        conversation: Conversation,
        customer: Customer,
        typing: bool,
        author: dict[str, Any] | None,
    ) -> None:
        await self._post(
            channel,
            "agent.typing",
            None,
            conversation,
            customer,
            {"typing": typing, "author": author},
        )

    async def conversation_ended(
        self, channel: Channel, conversation: Conversation, customer: Customer, reason: str
    ) -> None:
        await self._post(
            channel,
            "conversation.ended",
            f"evt_end_{conversation.id}",
            conversation,
            customer,
            {"reason": reason},
        )

    async def idle_changed(
        self,
        channel: Channel,
        conversation: Conversation,
        customer: Customer,
        *,
        warning: bool,
        deadline: int | None,
    ) -> None:
        event_type = "conversation.idle_warning" if warning else "conversation.idle_cleared"
        await self._post(channel, event_type, None, conversation, customer, {"deadline": deadline})

    def customer_message_status(self, customer: Customer, message_id: str, status: str) -> None:
        """Nothing is sent: the platform had its answer when the message was accepted, and a
        refusal comes with the conversation's end, which reaches it as `conversation.ended`."""

    async def _post(
        self,
        channel: Channel,
        event_type: str,
        event_id: str | None,
        conversation: Conversation,
        customer: Customer,
        data: dict[str, Any],
    ) -> None:
        if not channel.webhook_url:
            raise PermanentFailure(f"channel {channel.id!r} has no webhook URL")
        event = {
            "id": event_id or f"evt_{conversation.id}_{now_ms()}",
            "type": event_type,
            "createdAt": now_ms(),
            "channelId": channel.id,
            "threadId": conversation.id,
            "customer": {"id": customer.id, "externalId": customer.external_id},
            **data,
        }
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Byoc-Event": event_type,
            "X-Byoc-Delivery": str(event["id"]),
            **signed_headers(channel.secret, body),
        }
        request = self._http.build_request(
            "POST", channel.webhook_url, content=body, headers=headers
        )
        try:
            response = await self._http.send(
                replace(request, max_response_bytes=MAX_ANSWER_BYTES), timeout=self._timeout
            )
        except HttpRefusedAddress as exc:
            # Retrying cannot help: the URL must change (`byoc channels` or the Action page).
            raise PermanentFailure(f"webhook: {exc}") from exc
        except HttpError as exc:
            raise RetryLater(f"webhook {channel.webhook_url}: {exc.__class__.__name__}") from exc
        if response.is_success:
            return
        status = response.status_code
        if status in (408, 425, 429) or status >= 500:
            retry_after = response.headers.get("Retry-After")
            raise RetryLater(
                f"webhook answered {status}",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        raise PermanentFailure(f"webhook refused the event with {status}: {response.text[:200]}")
