"""The JSON agent and control API under `/emulator` (no auth: it is the emulator's back door)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse

from cxone_emulator.agents import Agent, AgentDesk, CallbackFailed
from cxone_emulator.config import (
    MESSAGE_IDS,
    IntegrationConfig,
    ReplyStyle,
    parse_message_ids,
)
from cxone_emulator.errors import error_body, invalid
from cxone_emulator.faults import FaultInjector
from cxone_emulator.recorder import EventLog, filter_requests
from cxone_emulator.rich_samples import rich_samples
from cxone_emulator.state import CONTACT_STATUSES, EmulatorState, integration_json
from cxone_emulator.urls import root_url
from cxone_emulator.validation import (
    JsonObject,
    attachments,
    message_content,
    one_of,
    optional_int,
    optional_object,
    optional_str,
    read_json_object,
    required_bool,
    required_str,
)


def _agent(body: JsonObject) -> Agent:
    given = optional_object(body, "agent") or {}
    default = Agent()
    for name in ("firstName", "surname", "nickname", "imageUrl"):
        optional_str(body, f"agent.{name}")
    return Agent(
        first_name=given.get("firstName") or default.first_name,
        surname=given.get("surname") or default.surname,
        nickname=given.get("nickname") or default.nickname,
        image_url=given.get("imageUrl") or default.image_url,
    )


def _reply_content(body: JsonObject) -> JsonObject:
    """A reply is `text`, or a whole `messageContent` (any DE type: TEXT, QUICK_REPLIES,
    LIST_PICKER, RICH_LINK, ADAPTIVE_CARD, …), sent to the box as it is."""
    if "messageContent" in body:
        return message_content(body)
    return {"type": "TEXT", "payload": {"text": required_str(body, "text", allow_empty=True)}}


def _failed(exc: CallbackFailed, extra: JsonObject | None = None) -> JSONResponse:
    code = "RecipientRefused" if exc.status == 422 else "CallbackFailed"
    return JSONResponse(
        {**error_body(exc.message, code), **(extra or {}), "callback": exc.result.to_json()},
        status_code=exc.status,
    )


def build_agent_router(
    state: EmulatorState,
    desk: AgentDesk,
    requests_log: EventLog,
    callbacks_log: EventLog,
    faults: FaultInjector,
) -> APIRouter:
    config = state.config
    router = APIRouter(prefix="/emulator")

    @router.get("/info")
    async def info(request: Request) -> JSONResponse:
        root = root_url(request, config)
        return JSONResponse(
            {
                "url": root,
                "apiUrl": root + config.base_path,
                "brandId": config.brand_id,
                "tenantId": config.tenant_id,
                "businessUnitId": config.business_unit_id,
                "agentUserId": config.agent_user_id,
            }
        )

    # -- contacts ----------------------------------------------------------------------------
    @router.get("/contacts")
    async def list_contacts(request: Request) -> JSONResponse:
        channel_id = request.query_params.get("channelId")
        status = request.query_params.get("status")
        data = [
            state.agent_contact_json(contact)
            for contact in state.contacts.values()
            if (not channel_id or contact.channel_id == channel_id)
            and (not status or contact.status == status)
        ]
        return JSONResponse({"data": data})

    @router.get("/contacts/{contact_id}")
    async def get_contact(contact_id: str) -> JSONResponse:
        return JSONResponse(state.agent_contact_json(desk.contact(contact_id)))

    @router.post("/contacts/{contact_id}/accept")
    async def accept(contact_id: str) -> JSONResponse:
        contact = desk.contact(contact_id)
        contact.set_status("open")
        return JSONResponse(state.agent_contact_json(contact))

    @router.post("/contacts/{contact_id}/close")
    async def close(contact_id: str) -> JSONResponse:
        contact = desk.contact(contact_id)
        contact.set_status("closed")
        return JSONResponse(state.agent_contact_json(contact))

    @router.post("/contacts/{contact_id}/close-on-next-message")
    async def close_on_next_message(contact_id: str, request: Request) -> JSONResponse:
        """Close the contact (or, with `{"what": "thread"}`, its thread) just before the next
        customer message on its thread is handled: the agent's close racing that message."""
        contact = desk.contact(contact_id)
        body = await read_json_object(request, allow_empty=True)
        what = one_of(body, "what", ("contact", "thread")) if "what" in body else "contact"
        contact.close_on_next_message = what
        return JSONResponse(state.agent_contact_json(contact))

    @router.post("/contacts/{contact_id}/status")
    async def set_status(contact_id: str, request: Request) -> JSONResponse:
        contact = desk.contact(contact_id)
        body = await read_json_object(request)
        contact.set_status(one_of(body, "status", CONTACT_STATUSES))
        return JSONResponse(state.agent_contact_json(contact))

    @router.post("/contacts/{contact_id}/reply")
    async def reply(contact_id: str, request: Request) -> JSONResponse:
        desk.contact(contact_id)
        body = await read_json_object(request)
        content = _reply_content(body)
        files = attachments(body)
        agent = _agent(body)
        try:
            message, result = await desk.reply(contact_id, content, files, agent)
        except CallbackFailed as exc:
            kept = {"message": state.message_json(exc.kept)} if exc.kept else None
            return _failed(exc, kept)
        return JSONResponse(
            {
                "message": state.message_json(message),
                "callback": {"status": result.status, "body": result.body},
            }
        )

    @router.post("/contacts/{contact_id}/typing")
    async def typing(contact_id: str, request: Request) -> JSONResponse:
        desk.contact(contact_id)
        body = await read_json_object(request)
        is_typing = required_bool(body, "typing")
        try:
            result = await desk.typing(contact_id, is_typing, _agent(body))
        except CallbackFailed as exc:
            return _failed(exc)
        return JSONResponse({"callback": {"status": result.status, "body": result.body}})

    @router.get("/rich-samples")
    async def samples(request: Request) -> JSONResponse:
        """A `messageContent` per rich type, ready to send as a reply's `messageContent`."""
        return JSONResponse(rich_samples(root_url(request, config)))

    # -- channels and outbound ---------------------------------------------------------------
    @router.get("/channels")
    async def list_channels() -> JSONResponse:
        return JSONResponse({"data": list(state.channels.values())})

    @router.post("/channels/{channel_id}/outbound")
    async def outbound(channel_id: str, request: Request) -> JSONResponse:
        desk.integration_for(channel_id)
        body = await read_json_object(request)
        customer_id = required_str(body, "customerId")
        text = required_str(body, "text")
        name = optional_str(body, "customerName")
        try:
            contact, message = await desk.start_outbound(
                channel_id, customer_id, name, text, _agent(body)
            )
        except CallbackFailed as exc:
            return _failed(exc)
        return JSONResponse(
            {"contact": state.agent_contact_json(contact), "message": state.message_json(message)}
        )

    # -- integrations, tokens ----------------------------------------------------------------
    @router.post("/integrations")
    async def upsert_integration(request: Request) -> JSONResponse:
        body = await read_json_object(request)
        style = one_of(body, "replyStyle", ("legacy", "dfo3")) if "replyStyle" in body else ""
        reply_style: ReplyStyle = "legacy" if style == "legacy" else "dfo3"
        integration = IntegrationConfig(
            id=optional_str(body, "id") or state.new_uuid(),
            box_url=required_str(body, "boxUrl"),
            authorization_url=required_str(body, "authorizationUrl"),
            client_id=required_str(body, "clientId"),
            client_secret=required_str(body, "clientSecret"),
            reply_style=reply_style,
            name=optional_str(body, "name") or "BYOC",
            action_url=optional_str(body, "actionUrl"),
            message_ids=parse_message_ids(one_of(body, "messageIds", MESSAGE_IDS))
            if "messageIds" in body
            else "body",
        )
        state.integrations[integration.id] = integration
        # New credentials make any cached token meaningless.
        state.integration_tokens.pop(integration.id, None)
        return JSONResponse(integration_json(integration), status_code=201)

    @router.get("/integrations")
    async def list_integrations() -> JSONResponse:
        return JSONResponse({"data": [integration_json(i) for i in state.integrations.values()]})

    @router.post("/one-time-tokens")
    async def mint_one_time_token(request: Request) -> JSONResponse:
        body = await read_json_object(request, allow_empty=True)
        user_id = optional_int(body, "userId") or config.agent_user_id
        ott = state.one_time_tokens.mint(user_id, config.one_time_token_ttl_seconds)
        return JSONResponse({"token": ott.token, "brandId": config.brand_id, "userId": user_id})

    @router.put("/tokens/expire")
    async def expire_tokens() -> JSONResponse:
        return JSONResponse({"expired": state.tokens.expire_all()})

    @router.post("/reset")
    async def reset() -> JSONResponse:
        state.reset()
        # Cached integration tokens go too, so the next callback starts the token dance afresh.
        state.integration_tokens.clear()
        requests_log.clear()
        callbacks_log.clear()
        faults.clear(config.seed)
        return JSONResponse({"reset": True})

    # -- logs and faults ---------------------------------------------------------------------
    @router.get("/requests")
    async def list_requests(request: Request) -> JSONResponse:
        data = filter_requests(
            requests_log.entries(),
            request.query_params.get("pathContains"),
            request.query_params.get("method"),
        )
        return JSONResponse({"data": data})

    @router.delete("/requests")
    async def clear_requests() -> Response:
        requests_log.clear()
        return Response(status_code=204)

    @router.get("/callbacks")
    async def list_callbacks(request: Request) -> JSONResponse:
        contains = request.query_params.get("urlContains")
        data = [e for e in callbacks_log.entries() if not contains or contains in e["url"]]
        return JSONResponse({"data": data})

    @router.delete("/callbacks")
    async def clear_callbacks() -> Response:
        callbacks_log.clear()
        return Response(status_code=204)

    @router.put("/faults")
    async def set_faults(request: Request) -> JSONResponse:
        body = await read_json_object(request)
        if "rules" not in body:
            raise invalid("rules", "is required", "MissingField")
        faults.configure(body, config.seed)
        return JSONResponse(faults.to_json())

    @router.get("/faults")
    async def get_faults() -> JSONResponse:
        return JSONResponse(faults.to_json())

    @router.delete("/faults")
    async def clear_faults() -> Response:
        faults.clear(config.seed)
        return Response(status_code=204)

    return router
