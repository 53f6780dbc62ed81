"""The Digital Engagement REST API the middleware calls (contract §3), under the base path."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse

from cxone_emulator.auth import bearer_dependency
from cxone_emulator.clock import iso, now_iso
from cxone_emulator.de_setup_api import build_setup_router
from cxone_emulator.errors import CxoneError, invalid, not_found
from cxone_emulator.state import (
    CONTACT_STATUSES,
    ENDED_STATUSES,
    Contact,
    EmulatorState,
    Message,
    Thread,
)
from cxone_emulator.validation import (
    JsonObject,
    attachments,
    iso_datetime,
    message_content,
    object_items,
    one_of,
    optional_list,
    optional_object,
    optional_str,
    read_json_object,
    required_bool,
    required_list,
    required_object,
    required_str,
)

DUPLICATE_HEADER = "X-Emulator-Duplicate"
MESSAGE_STATUSES = ("delivered", "seen", "failed")
ABANDON_TYPES = ("abandon", "expired", "shortAbandon")
# Request fields of §3.2 kept verbatim on the message, so tests can read back what was sent.
_MESSAGE_EXTRAS = ("replyToMessage", "browserFingerprint", "externalAttributes", "recipients")


def _query_values(request: Request, name: str) -> list[str]:
    """CXone spells repeatable filters `name[]=`; plain `name=` is accepted as well."""
    return request.query_params.getlist(f"{name}[]") + request.query_params.getlist(name)


class DeService:
    """The DE operations, free of HTTP routing, shared by the routes below."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def channel(self, channel_id: str) -> JsonObject:
        channel = self.state.channels.get(channel_id)
        if channel is None:
            raise not_found(f"channel {channel_id!r}", "ChannelNotFound", "channelId")
        return channel

    def thread(self, channel_id: str, external_id: str) -> Thread:
        self.channel(channel_id)
        thread = self.state.thread_for(channel_id, external_id)
        if thread is None:
            raise not_found(
                f"thread {external_id!r}", "ThreadNotFound", "threadIdOnExternalPlatform"
            )
        return thread

    def contact(self, contact_id: str) -> Contact:
        contact = self.state.contacts.get(contact_id)
        if contact is None:
            raise not_found(f"contact {contact_id!r}", "ContactNotFound", "contactId")
        return contact

    def replay(self, channel_id: str, external_id: str | None) -> JSONResponse | None:
        """An already stored message answers again, unchanged, instead of being duplicated."""
        if external_id is None:
            return None
        message = self.state.messages_by_external.get((channel_id, external_id))
        if message is None:
            return None
        return JSONResponse(self.created(message), headers={DUPLICATE_HEADER: "true"})

    def created(self, message: Message) -> JsonObject:
        contact = self.state.contacts[message.contact_id]
        return {
            "consumerContact": self.state.contact_json(contact),
            "message": self.state.message_json(message),
        }

    def close_if_armed(self, thread: Thread) -> None:
        """Close what the control API armed on the thread's contact, once (a race on demand)."""
        contact = self.state.latest_contact(thread)
        if contact is None or contact.close_on_next_message is None:
            return
        if contact.close_on_next_message == "thread":
            thread.can_add_more_messages = False
        else:
            contact.set_status("closed")
        contact.close_on_next_message = None

    def contact_for_new_message(
        self,
        thread: Thread,
        direction: str,
        status: str,
        custom_fields: list[object] | None,
    ) -> Contact:
        if not thread.can_add_more_messages:
            raise CxoneError(
                400,
                f"thread {thread.id_on_external_platform!r} does not accept more messages",
                "ThreadClosed",
                "thread.idOnExternalPlatform",
            )
        contact = self.state.latest_contact(thread)
        # DE opens a new case when a customer writes on a thread whose case has ended.
        if contact is None or contact.status in ENDED_STATUSES:
            contact = self.state.open_contact(thread, direction, status, custom_fields)
        elif custom_fields:
            contact.custom_fields = list(custom_fields)
        return contact


def build_de_router(state: EmulatorState) -> APIRouter:
    service = DeService(state)
    config = state.config
    router = APIRouter(prefix=config.base_path, dependencies=[bearer_dependency(state)])

    # -- messages (§3.2, §3.3, §3.4, §3.5) -----------------------------------------------------
    @router.post("/channels/{channel_id}/messages")
    async def create_message(channel_id: str, request: Request) -> JSONResponse:
        service.channel(channel_id)
        body = await read_json_object(request)
        external_id = required_str(body, "idOnExternalPlatform")
        one_of(body, "direction", ("inbound",))
        created_at = iso_datetime(body, "createdAtWithMilliseconds")
        thread_external_id = required_str(body, "thread.idOnExternalPlatform")
        thread_name = optional_str(body, "thread.threadName")
        content = message_content(body)
        author = required_object(body, "authorEndUserIdentity")
        customer_id = required_str(body, "authorEndUserIdentity.idOnExternalPlatform")
        object_items(
            body,
            "authorEndUserIdentity.customFields",
            optional_list(body, "authorEndUserIdentity.customFields") or [],
        )
        files = attachments(body)
        contact_fields = optional_object(body, "contact") or {}
        custom_fields = optional_list(body, "contact.customFields")
        requested_status = optional_str(body, "contact.status")
        if requested_status is not None and requested_status not in CONTACT_STATUSES:
            raise invalid("contact.status", f"must be one of {', '.join(CONTACT_STATUSES)}")
        for name in ("replyToMessage", "browserFingerprint"):
            optional_object(body, name)
        for name in ("externalAttributes", "recipients"):
            optional_list(body, name)

        duplicate = service.replay(channel_id, external_id)
        if duplicate is not None:
            return duplicate

        thread = state.thread_for(channel_id, thread_external_id)
        if thread is None:
            thread = state.open_thread(channel_id, thread_external_id, customer_id, thread_name)
        elif thread_name:
            thread.thread_name = thread_name
        service.close_if_armed(thread)
        contact = service.contact_for_new_message(
            thread, "inbound", requested_status or "new", custom_fields
        )
        if "skillId" in contact_fields:
            contact.extra["skillId"] = contact_fields["skillId"]
        state.customer(customer_id, author)
        message = Message(
            id=state.new_uuid(),
            id_on_external_platform=external_id,
            thread_id=thread.id,
            contact_id=contact.id,
            channel_id=channel_id,
            direction="inbound",
            message_content=content,
            attachments=files,
            created_at=iso(created_at) if created_at else now_iso(),
            status="received",
            author_end_user_identity=author,
            extra={k: body[k] for k in _MESSAGE_EXTRAS if k in body},
        )
        state.add_message(message)
        # A customer who sent a message is no longer typing it.
        contact.customer_typing = False
        return JSONResponse(service.created(message))

    @router.put("/channels/{channel_id}/messages/{external_id}/status")
    async def update_message_status(
        channel_id: str, external_id: str, request: Request
    ) -> JSONResponse:
        service.channel(channel_id)
        body = await read_json_object(request)
        status = one_of(body, "status", MESSAGE_STATUSES)
        updated_at = iso_datetime(body, "updatedAt", required_field=False)
        reason = optional_str(body, "reason")
        message = state.messages_by_external.get((channel_id, external_id))
        if message is None:
            raise not_found(f"message {external_id!r}", "MessageNotFound", "idOnExternalPlatform")
        if message.direction != "outbound":
            # Only messages sent towards the customer have a delivery state to report.
            raise CxoneError(
                400,
                "status can only be reported for outbound (agent) messages",
                "InvalidDirection",
                "idOnExternalPlatform",
            )
        message.status = status
        message.status_reason = reason
        message.status_updated_at = iso(updated_at) if updated_at else now_iso()
        return JSONResponse({"message": state.message_json(message)})

    @router.post("/channels/{channel_id}/threads/{thread_external_id}/sender-actions")
    async def customer_sender_action(
        channel_id: str, thread_external_id: str, request: Request
    ) -> Response:
        thread = service.thread(channel_id, thread_external_id)
        body = await read_json_object(request)
        action = one_of(body, "action", ("isTypingOn", "isTypingOff"))
        contact = state.latest_contact(thread)
        if contact is not None:
            contact.customer_typing = action == "isTypingOn"
        return Response(status_code=204)

    @router.post("/channels/{channel_id}/outbound")
    async def middleware_outbound(channel_id: str, request: Request) -> JSONResponse:
        service.channel(channel_id)
        body = await read_json_object(request)
        thread_external_id = required_str(body, "thread.idOnExternalPlatform")
        thread_name = optional_str(body, "thread.threadName")
        content = message_content(body)
        recipients = object_items(body, "recipients", required_list(body, "recipients"))
        for index, recipient in enumerate(recipients):
            value = recipient.get("idOnExternalPlatform")
            path = f"recipients[{index}].idOnExternalPlatform"
            if value is None:
                raise invalid(path, "is required", "MissingField")
            if not isinstance(value, str):
                raise invalid(path, "must be a string", "InvalidType")
        files = attachments(body)
        external_id = optional_str(body, "idOnExternalPlatform")
        duplicate = service.replay(channel_id, external_id)
        if duplicate is not None:
            return duplicate

        customer_id = str(recipients[0]["idOnExternalPlatform"])
        thread = state.thread_for(channel_id, thread_external_id)
        if thread is None:
            thread = state.open_thread(channel_id, thread_external_id, customer_id, thread_name)
        identity = {"idOnExternalPlatform": customer_id}
        if isinstance(recipients[0].get("name"), str):
            identity["firstName"] = recipients[0]["name"]
        state.customer(customer_id, identity)
        contact = service.contact_for_new_message(thread, "outbound", "open", None)
        message = Message(
            id=state.new_uuid(),
            id_on_external_platform=external_id,
            thread_id=thread.id,
            contact_id=contact.id,
            channel_id=channel_id,
            direction="outbound",
            message_content=content,
            attachments=files,
            created_at=now_iso(),
            status="sent",
            extra={"recipients": recipients},
        )
        state.add_message(message)
        return JSONResponse(service.created(message))

    # -- contacts (§3.6) -------------------------------------------------------------------
    @router.get("/contacts/{contact_id}")
    async def get_contact(contact_id: str) -> JSONResponse:
        return JSONResponse(state.contact_json(service.contact(contact_id)))

    @router.get("/contacts")
    async def search_contacts(request: Request) -> JSONResponse:
        channels = set(_query_values(request, "channel"))
        statuses = set(_query_values(request, "status"))
        for status in statuses - set(CONTACT_STATUSES):
            raise invalid("status", f"unknown status {status!r}")
        end_users = set(_query_values(request, "endUserIdOnExternalPlatform"))
        hits = [
            state.contact_json(contact)
            for contact in state.contacts.values()
            if (not channels or contact.channel_id in channels)
            and (not statuses or contact.status in statuses)
            and (not end_users or contact.end_user_id in end_users)
        ]
        return JSONResponse({"hits": len(hits), "data": hits})

    @router.put("/contacts/{contact_id}/status")
    async def set_contact_status(contact_id: str, request: Request) -> JSONResponse:
        contact = service.contact(contact_id)
        body = await read_json_object(request)
        contact.set_status(one_of(body, "status", CONTACT_STATUSES))
        return JSONResponse(state.contact_json(contact))

    @router.post("/contacts/{contact_id}/abandon")
    async def abandon_contact(contact_id: str, request: Request) -> JSONResponse:
        contact = service.contact(contact_id)
        body = await read_json_object(request)
        contact.abandon_type = one_of(body, "type", ABANDON_TYPES)
        contact.set_status("closed")
        return JSONResponse(state.contact_json(contact))

    # -- threads (§3.6) --------------------------------------------------------------------
    @router.get("/threads")
    async def search_threads(request: Request) -> JSONResponse:
        channel_id = request.query_params.get("channelId")
        external_id = request.query_params.get("idOnExternalPlatform")
        if channel_id is not None and external_id is not None:
            found = state.thread_for(channel_id, external_id)  # the middleware's end check
            return JSONResponse({"data": [found.to_json()] if found else []})
        data = [
            thread.to_json()
            for thread in state.threads.values()
            if (channel_id is None or thread.channel_id == channel_id)
            and (external_id is None or thread.id_on_external_platform == external_id)
        ]
        return JSONResponse({"data": data})

    @router.get("/channels/{channel_id}/threads/{thread_external_id}")
    async def get_thread(channel_id: str, thread_external_id: str) -> JSONResponse:
        return JSONResponse(service.thread(channel_id, thread_external_id).to_json())

    @router.put("/channels/{channel_id}/threads/{thread_external_id}")
    async def update_thread(
        channel_id: str, thread_external_id: str, request: Request
    ) -> JSONResponse:
        thread = service.thread(channel_id, thread_external_id)
        body = await read_json_object(request)
        can_add = required_bool(body, "canAddMoreMessages")
        name = optional_str(body, "threadName")
        thread.can_add_more_messages = can_add
        if name is not None:
            thread.thread_name = name
        return JSONResponse(thread.to_json())

    router.include_router(build_setup_router(state, service))
    return router
