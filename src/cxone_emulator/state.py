"""The emulated Digital Engagement tenant: channels, threads, contacts, messages, customers.

One `EmulatorState` is created per app by `create_app`. Handlers run on a single event loop
and mutate state only between awaits, so each mutation is atomic without a lock; code that
must await in the middle of a change (agent callbacks) re-reads state after the await.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cxone_emulator.clock import now_iso
from cxone_emulator.config import ChannelConfig, EmulatorConfig, IntegrationConfig
from cxone_emulator.tokens import OneTimeTokenStore, TokenStore

JsonObject = dict[str, Any]

CONTACT_STATUSES = ("new", "open", "pending", "escalated", "resolved", "closed", "trashed")
# A customer message on a thread whose latest contact is in one of these opens a new case.
ENDED_STATUSES = frozenset({"resolved", "closed", "trashed"})


@dataclass
class Customer:
    id_on_external_platform: str
    identity: JsonObject = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        parts = [self.identity.get("firstName"), self.identity.get("lastName")]
        name = " ".join(str(part) for part in parts if part)
        return name or str(self.identity.get("nickname") or self.id_on_external_platform)


@dataclass
class Thread:
    id: str
    id_on_external_platform: str
    channel_id: str
    customer_id: str
    thread_name: str | None = None
    can_add_more_messages: bool = True
    contact_ids: list[str] = field(default_factory=list)

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "idOnExternalPlatform": self.id_on_external_platform,
            "channelId": self.channel_id,
            "canAddMoreMessages": self.can_add_more_messages,
            "threadName": self.thread_name,
        }


@dataclass
class Contact:
    id: str
    thread_id: str
    channel_id: str
    end_user_id: str
    direction: str
    status: str
    created_at: str
    status_updated_at: str
    custom_fields: list[Any] = field(default_factory=list)
    extra: JsonObject = field(default_factory=dict)
    abandon_type: str | None = None
    customer_typing: bool = False
    message_ids: list[str] = field(default_factory=list)
    # Armed by the control API: "contact" or "thread" is closed just before the next customer
    # message on this contact's thread is handled, as if the agent had been a moment faster.
    close_on_next_message: str | None = None

    def set_status(self, status: str) -> None:
        self.status = status
        self.status_updated_at = now_iso()
        if status in ENDED_STATUSES:
            self.customer_typing = False


@dataclass
class Message:
    id: str
    id_on_external_platform: str | None
    thread_id: str
    contact_id: str
    channel_id: str
    direction: str
    message_content: JsonObject
    attachments: list[JsonObject]
    created_at: str
    status: str
    author_end_user_identity: JsonObject | None = None
    author_user: JsonObject | None = None
    status_reason: str | None = None
    status_updated_at: str | None = None
    # Optional request fields the contract lists (replyToMessage, externalAttributes, ...),
    # stored as given so tests can see exactly what arrived.
    extra: JsonObject = field(default_factory=dict)


@dataclass
class Attachment:
    id: str
    content: bytes
    mime_type: str
    expires_at: float


@dataclass
class IntegrationToken:
    """The token the emulator holds for calling one integration's callbacks."""

    access_token: str
    expires_at: float


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        # Ids come from a seeded generator so a seeded run names things the same way twice.
        self._ids = random.Random(config.seed)
        self.tokens = TokenStore()
        self.one_time_tokens = OneTimeTokenStore()
        self.integrations: dict[str, IntegrationConfig] = {i.id: i for i in config.integrations}
        self.integration_tokens: dict[str, IntegrationToken] = {}
        self.channels: dict[str, JsonObject] = {}
        for channel in config.channels:
            self.channels[channel.id] = channel_from_config(channel)
        self.custom_field_definitions: dict[str, JsonObject] = {}
        self.reset()

    def reset(self) -> None:
        """Forget conversations; integrations, channels and definitions stay."""
        self.customers: dict[str, Customer] = {}
        self.threads: dict[str, Thread] = {}
        self.threads_by_external: dict[tuple[str, str], Thread] = {}
        self.contacts: dict[str, Contact] = {}
        self.messages: dict[str, Message] = {}
        self.messages_by_external: dict[tuple[str, str], Message] = {}
        self.attachments: dict[str, Attachment] = {}
        self._next_contact = 1000

    # -- ids ---------------------------------------------------------------------------------
    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def next_contact_id(self) -> str:
        self._next_contact += 1
        return str(self._next_contact)

    # -- lookups -----------------------------------------------------------------------------
    def thread_for(self, channel_id: str, external_id: str) -> Thread | None:
        return self.threads_by_external.get((channel_id, external_id))

    def latest_contact(self, thread: Thread) -> Contact | None:
        return self.contacts[thread.contact_ids[-1]] if thread.contact_ids else None

    def customer(self, external_id: str, identity: JsonObject | None = None) -> Customer:
        customer = self.customers.get(external_id)
        if customer is None:
            customer = Customer(external_id)
            self.customers[external_id] = customer
        if identity:
            customer.identity.update(identity)
        return customer

    # -- changes -----------------------------------------------------------------------------
    def open_thread(
        self, channel_id: str, external_id: str, customer_id: str, thread_name: str | None
    ) -> Thread:
        thread = Thread(self.new_uuid(), external_id, channel_id, customer_id, thread_name)
        self.threads[thread.id] = thread
        self.threads_by_external[(channel_id, external_id)] = thread
        return thread

    def open_contact(
        self, thread: Thread, direction: str, status: str, custom_fields: list[Any] | None = None
    ) -> Contact:
        now = now_iso()
        contact = Contact(
            id=self.next_contact_id(),
            thread_id=thread.id,
            channel_id=thread.channel_id,
            end_user_id=thread.customer_id,
            direction=direction,
            status=status,
            created_at=now,
            status_updated_at=now,
            custom_fields=list(custom_fields or []),
        )
        self.contacts[contact.id] = contact
        thread.contact_ids.append(contact.id)
        return contact

    def add_message(self, message: Message) -> None:
        self.messages[message.id] = message
        self.contacts[message.contact_id].message_ids.append(message.id)
        self.index_message(message)

    def index_message(self, message: Message) -> None:
        if message.id_on_external_platform is not None:
            key = (message.channel_id, message.id_on_external_platform)
            self.messages_by_external[key] = message

    def store_attachment(self, content: bytes, mime_type: str) -> Attachment:
        attachment = Attachment(
            self.new_uuid(), content, mime_type, time.time() + self.config.attachment_ttl_seconds
        )
        self.attachments[attachment.id] = attachment
        return attachment

    # -- JSON --------------------------------------------------------------------------------
    def contact_json(self, contact: Contact) -> JsonObject:
        thread = self.threads[contact.thread_id]
        data: JsonObject = {
            **contact.extra,
            "id": contact.id,
            "threadId": contact.thread_id,
            "threadIdOnExternalPlatform": thread.id_on_external_platform,
            "channelId": contact.channel_id,
            "status": contact.status,
            "createdAt": contact.created_at,
            "statusUpdatedAt": contact.status_updated_at,
            "endUserIdOnExternalPlatform": contact.end_user_id,
            "customFields": contact.custom_fields,
            "direction": contact.direction,
        }
        if contact.abandon_type is not None:
            data["abandonType"] = contact.abandon_type
        return data

    def message_json(self, message: Message) -> JsonObject:
        thread = self.threads[message.thread_id]
        data: JsonObject = {
            **message.extra,
            "id": message.id,
            "idOnExternalPlatform": message.id_on_external_platform,
            "threadId": message.thread_id,
            "threadIdOnExternalPlatform": thread.id_on_external_platform,
            "contactId": message.contact_id,
            "channelId": message.channel_id,
            "direction": message.direction,
            "messageContent": message.message_content,
            "attachments": message.attachments,
            "createdAt": message.created_at,
            "status": message.status,
        }
        if message.author_end_user_identity is not None:
            data["authorEndUserIdentity"] = message.author_end_user_identity
        if message.author_user is not None:
            data["authorUser"] = message.author_user
        if message.status_reason is not None:
            data["statusReason"] = message.status_reason
        if message.status_updated_at is not None:
            data["statusUpdatedAt"] = message.status_updated_at
        return data

    def agent_contact_json(self, contact: Contact) -> JsonObject:
        """The agent API's richer view: the contact with its transcript and typing flag."""
        return {
            **self.contact_json(contact),
            "customerTyping": contact.customer_typing,
            "customerId": contact.end_user_id,
            "customerName": self.customer(contact.end_user_id).display_name,
            "messages": [self.message_json(self.messages[m]) for m in contact.message_ids],
        }


def channel_from_config(channel: ChannelConfig) -> JsonObject:
    return {
        "id": channel.id,
        "idOnExternalPlatform": channel.id_on_external_platform or channel.id,
        "channelIntegrationId": channel.integration_id,
        "realExternalPlatformId": "custom",
        "name": channel.name,
        "isPrivate": True,
        "hasTreeStructure": False,
        "isLiveChat": True,
        "hasOutboundFlow": True,
        "hasManualOutboundFlow": True,
        "hasAbilityToSendFiles": True,
        "canSendSenderActions": True,
    }


def integration_json(integration: IntegrationConfig) -> JsonObject:
    return {
        "id": integration.id,
        "name": integration.name,
        "boxUrl": integration.box_url,
        "authorizationUrl": integration.authorization_url,
        "clientId": integration.client_id,
        "replyStyle": integration.reply_style,
        "actionUrl": integration.action_url,
        "messageIds": integration.message_ids,
    }
