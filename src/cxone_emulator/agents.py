"""What the emulated agents do: reply, type, start an outbound conversation (contract §2).

The flows call the middleware through `CallbackClient` and only then change state, re-reading
it after each await, because other requests may have run while the callback was in flight.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cxone_emulator.callbacks import CallbackClient, CallbackResult
from cxone_emulator.clock import now_iso
from cxone_emulator.config import IntegrationConfig
from cxone_emulator.errors import CxoneError, not_found
from cxone_emulator.state import ENDED_STATUSES, Contact, EmulatorState, Message, Thread
from cxone_emulator.validation import JsonObject


@dataclass
class Agent:
    first_name: str = "Alex"
    surname: str = "Agent"
    nickname: str = "Alex"
    image_url: str = ""


class CallbackFailed(Exception):
    """The middleware did not accept a callback; `status` is what the agent API answers."""

    def __init__(
        self,
        status: int,
        message: str,
        result: CallbackResult,
        kept: Message | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.result = result
        # The failed agent message, kept in the transcript with status "failed".
        self.kept = kept


class AgentDesk:
    def __init__(self, state: EmulatorState, callbacks: CallbackClient) -> None:
        self.state = state
        self.callbacks = callbacks

    # -- lookups -----------------------------------------------------------------------------
    def contact(self, contact_id: str) -> Contact:
        contact = self.state.contacts.get(contact_id)
        if contact is None:
            raise not_found(f"contact {contact_id!r}", "ContactNotFound", "contactId")
        return contact

    def integration_for(self, channel_id: str) -> IntegrationConfig:
        channel = self.state.channels.get(channel_id)
        if channel is None:
            raise not_found(f"channel {channel_id!r}", "ChannelNotFound", "channelId")
        integration = self.state.integrations.get(str(channel.get("channelIntegrationId")))
        if integration is None:
            raise CxoneError(
                409, f"channel {channel_id!r} has no registered integration", "NoIntegration"
            )
        return integration

    # -- bodies ------------------------------------------------------------------------------
    def brand(self) -> JsonObject:
        config = self.state.config
        return {
            "id": config.brand_id,
            "tenantId": config.tenant_id,
            "businessUnitId": config.business_unit_id,
        }

    def author_user(self, agent: Agent) -> JsonObject:
        return {
            "id": self.state.config.agent_user_id,
            "firstName": agent.first_name,
            "surname": agent.surname,
            "nickname": agent.nickname,
            "imageUrl": agent.image_url,
            "isBotUser": False,
        }

    def recipient(self, customer_id: str, name: str | None = None) -> JsonObject:
        return {
            "idOnExternalPlatform": customer_id,
            "name": name or self.state.customer(customer_id).display_name,
            "isPrimary": True,
            "isPrivate": False,
        }

    def message_body(
        self,
        message_id: str,
        thread: JsonObject,
        recipient: JsonObject,
        content: JsonObject,
        attachments: list[JsonObject],
        agent: Agent,
    ) -> JsonObject:
        return {
            "brand": self.brand(),
            "message": {"id": message_id},
            "thread": thread,
            "messageContent": content,
            "endUserRecipients": [recipient],
            "attachments": attachments,
            "authorUser": self.author_user(agent),
            "isReplyToSpecificMessage": False,
        }

    # -- flows -------------------------------------------------------------------------------
    async def reply(
        self, contact_id: str, content: JsonObject, attachments: list[JsonObject], agent: Agent
    ) -> tuple[Message, CallbackResult]:
        """`content`: the reply's `messageContent` (TEXT or a rich type)."""
        contact = self.contact(contact_id)
        if contact.status in ENDED_STATUSES:
            raise CxoneError(409, f"contact {contact_id} is {contact.status}", "ContactEnded")
        thread = self.state.threads[contact.thread_id]
        integration = self.integration_for(contact.channel_id)
        message_id = self.state.new_uuid()
        body = self.message_body(
            message_id,
            {"id": thread.id, "idOnExternalPlatform": thread.id_on_external_platform},
            self.recipient(contact.end_user_id),
            content,
            attachments,
            agent,
        )
        if integration.reply_style == "legacy":
            path = f"/1.0/posts/{thread.id}/messages"
        else:
            path = f"/2.0/channel/{contact.channel_id}/outbound"
        headers = _name_message(integration, body, message_id)
        result = await self.callbacks.call(integration, path, body, headers)
        external_id = _returned_message_id(result.body) if result.ok else None
        message = Message(
            id=message_id,
            id_on_external_platform=external_id,
            thread_id=thread.id,
            contact_id=contact.id,
            channel_id=contact.channel_id,
            direction="outbound",
            message_content=body["messageContent"],
            attachments=attachments,
            created_at=now_iso(),
            status="sent" if external_id else "failed",
            author_user=body["authorUser"],
        )
        if result.ok and external_id is None:
            result.error = "callback answered 2xx without an idOnExternalPlatform"
        if not result.ok and result.error is None:
            result.error = f"callback answered {result.status}"
        message.status_reason = result.error
        self.state.add_message(message)
        if external_id is None:
            raise CallbackFailed(502, f"reply was not delivered: {result.error}", result, message)
        if contact.status == "new":
            contact.set_status("open")  # replying takes the case, as in the agent desktop
        return message, result

    async def typing(self, contact_id: str, typing: bool, agent: Agent) -> CallbackResult:
        contact = self.contact(contact_id)
        thread = self.state.threads[contact.thread_id]
        integration = self.integration_for(contact.channel_id)
        path = (
            f"/1.0/channel/{contact.channel_id}/thread/{thread.id_on_external_platform}"
            "/sender-action"
        )
        body = {
            "brand": self.brand(),
            "senderAction": {"action": "isTypingOn" if typing else "isTypingOff"},
            "authorUser": self.author_user(agent),
        }
        result = await self.callbacks.call(integration, path, body)
        if not result.ok:
            raise CallbackFailed(502, f"sender action failed: {result.status}", result)
        return result

    async def start_outbound(
        self, channel_id: str, customer_id: str, customer_name: str | None, text: str, agent: Agent
    ) -> tuple[Contact, Message]:
        integration = self.integration_for(channel_id)
        recipient = self.recipient(customer_id, customer_name)
        validation = await self.callbacks.call(
            integration,
            f"/1.0/channel/{channel_id}/recipients/validation",
            {"brand": self.brand(), "endUserRecipients": [recipient]},
        )
        if validation.status == 400:
            raise CallbackFailed(422, "the middleware refused the recipient", validation)
        if not validation.ok:
            raise CallbackFailed(
                502, f"recipient validation failed: {validation.status}", validation
            )

        thread_id = self.state.new_uuid()
        message_id = self.state.new_uuid()
        proposed = f"de-{uuid.uuid4()}"
        body = self.message_body(
            message_id,
            {"id": thread_id, "idOnExternalPlatform": proposed},
            recipient,
            {"type": "TEXT", "payload": {"text": text}},
            [],
            agent,
        )
        # Agent-initiated outbound always uses the DFO 3.0 endpoint, whatever the reply style.
        headers = _name_message(integration, body, message_id)
        result = await self.callbacks.call(
            integration, f"/2.0/channel/{channel_id}/outbound", body, headers
        )
        if not result.ok:
            raise CallbackFailed(502, f"outbound was not delivered: {result.status}", result)
        external_thread = _returned_thread_id(result.body) or proposed
        self.state.customer(customer_id, {"firstName": customer_name} if customer_name else None)
        thread = self.state.thread_for(channel_id, external_thread)
        if thread is None:
            thread = Thread(thread_id, external_thread, channel_id, customer_id)
            self.state.threads[thread.id] = thread
            self.state.threads_by_external[(channel_id, external_thread)] = thread
        contact = self.state.latest_contact(thread)
        if contact is None or contact.status in ENDED_STATUSES:
            contact = self.state.open_contact(thread, "outbound", "open")
        message = Message(
            id=message_id,
            id_on_external_platform=_returned_message_id(result.body),
            thread_id=thread.id,
            contact_id=contact.id,
            channel_id=channel_id,
            direction="outbound",
            message_content=body["messageContent"],
            attachments=[],
            created_at=now_iso(),
            status="sent",
            author_user=body["authorUser"],
        )
        self.state.add_message(message)
        return contact, message


def _name_message(
    integration: IntegrationConfig, body: JsonObject, message_id: str
) -> dict[str, str]:
    """Name the DE message the way the integration is set to (`message_ids`); the headers to
    send with the callback."""
    if integration.message_ids == "body":
        return {}
    del body["message"]
    return {"Idempotency-Key": message_id} if integration.message_ids == "header" else {}


def _returned_message_id(body: object) -> str | None:
    """Legacy answers `{idOnExternalPlatform}`, DFO 3.0 `{message: {idOnExternalPlatform}}`."""
    if not isinstance(body, dict):
        return None
    direct = body.get("idOnExternalPlatform")
    if isinstance(direct, str) and direct:
        return direct
    nested = body.get("message")
    if isinstance(nested, dict):
        value = nested.get("idOnExternalPlatform")
        if isinstance(value, str) and value:
            return value
    return None


def _returned_thread_id(body: object) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("thread"), dict):
        value = body["thread"].get("idOnExternalPlatform")
        if isinstance(value, str) and value:
            return value
    return None
