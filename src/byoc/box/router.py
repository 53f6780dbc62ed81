"""The box endpoints CXone calls (contract §2). Thin: authenticate, validate, hand over, answer."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from byoc.api.deps import (
    ActiveClientsDep,
    ConversationsDep,
    TokenIssuerDep,
    active_clients_of,
    conversations_of,
    metrics_of,
    token_issuer_of,
    token_throttle_of,
)
from byoc.api.lean import documented_body, json_response, parse_body
from byoc.box.credentials import BoxClient
from byoc.box.schemas import (
    AgentMessageBody,
    IdentityOut,
    LegacyReplyResponse,
    OutboundMessageOut,
    OutboundResponse,
    RecipientValidationBody,
    SenderActionBody,
    ThreadOut,
    TokenResponse,
)
from byoc.box.token_throttle import too_many_attempts
from byoc.conversations import rich
from byoc.conversations.models import AgentMessageIn, Delivered
from byoc.cxone import iso_millis
from byoc.errors import (
    ConversationNotFound,
    IdempotencyKeyReused,
    InvalidInput,
    RecipientRejected,
    Unauthenticated,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/integration/box", tags=["CXone callbacks"])


# --- OAuth token endpoint (RFC 6749 errors, not problem+json) --------------------------------


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="byoc"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


async def _token_request_fields(request: Request) -> dict[str, str]:
    """The token request's fields, from a JSON object or a form body, plus HTTP Basic.

    The body decides, not `Content-Type`: OAuth clients that send JSON without the header
    exist, and a body that opens with `{` is never a form. A body that claims to be JSON (by
    its header or its first character) and does not parse as an object is `invalid_request`.
    """
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    text = raw.decode()
    fields: dict[str, str] = {}
    if content_type == "application/json" or text.lstrip().startswith(("{", "[")):
        parsed = json.loads(text or "{}")
        if not isinstance(parsed, dict):
            raise ValueError("JSON body must be an object")
        fields = {k: str(v) for k, v in parsed.items() if v is not None}
    elif text:
        fields = dict(parse_qsl(text, keep_blank_values=True))
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        client_id, _, client_secret = decoded.partition(":")
        fields["client_id"] = unquote(client_id)
        fields["client_secret"] = unquote(client_secret)
    return fields


@router.post(
    "/1.0/token",
    response_model=TokenResponse,
    summary="Issue an access token to CXone (client credentials grant)",
    responses={
        400: {"description": "RFC 6749 error"},
        401: {"description": "invalid_client"},
        429: {"description": "too many failed attempts (problem+json, Retry-After)"},
    },
)
async def issue_token(request: Request) -> Response:
    # Lean (`byoc.api.lean`), answered by `byoc.api.hot`; the client and its secret hash come
    # from memory (`ActiveClients`), so a token costs no database read.
    try:
        fields = await _token_request_fields(request)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return _oauth_error(400, "invalid_request", "the token request could not be read")
    if fields.get("grant_type") != "client_credentials":
        return _oauth_error(
            400, "unsupported_grant_type", "only grant_type=client_credentials is supported"
        )
    client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
    if not client_id or not secret:
        return _oauth_error(401, "invalid_client", "client_id and client_secret are required")
    address = request.client.host if request.client else ""
    throttle = token_throttle_of(request)
    if (wait := throttle.client_wait(client_id)) is not None:
        return too_many_attempts(wait)
    active_clients = active_clients_of(request)
    # An address that spent its budget on failures is not worth a read of the client set:
    # only a client held in memory is checked for it, against what memory holds (the set is
    # still read again once it is older than its bound), and a failure counts for the client.
    spent = throttle.address_wait(address)
    if spent is not None and not active_clients.holds(client_id):
        return too_many_attempts(spent)
    tenant_id = await active_clients.verify(client_id, secret, recheck=spent is None)
    if tenant_id is None:
        await throttle.failed(client_id, address)
        if spent is not None:
            return too_many_attempts(spent)
        return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
    issued = token_issuer_of(request).issue(client_id, tenant_id)
    metrics_of(request).box_tokens_issued.inc()
    return JSONResponse(
        TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in).model_dump(),
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


# --- bearer authentication for every callback ------------------------------------------------


async def authenticated_client(
    request: Request, token_issuer: TokenIssuerDep, active_clients: ActiveClientsDep
) -> BoxClient:
    """The client (and so the tenant) the bearer token was issued to.

    Every callback then acts for that tenant only: a channel of another tenant is answered as
    unknown (404), and a `brand` in the body that is not the tenant's is refused (403).
    """
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a bearer token from the token endpoint is required")
    client = token_issuer.verify(token.strip())
    if not await active_clients.contains(client):
        raise Unauthenticated("the client that holds this token was revoked")
    return client


CurrentClient = Annotated[BoxClient, Depends(authenticated_client)]


# --- retried reply callbacks -----------------------------------------------------------------
#
# A reply callback is recognised when CXone retries it by the DE message id in its body
# (`message.id`, `messageId` or `id`), else by an `Idempotency-Key` or `X-Request-Id` header,
# both scoped to the channel. With none of them a retry cannot be told from a new message and is
# delivered again; the first such callback of each channel (in each process) is logged as a
# warning so that an operator sees that the tenant's callbacks carry no id.

IDEMPOTENCY_HEADERS = ("idempotency-key", "x-request-id")
MAX_IDEMPOTENCY_KEY_LENGTH = 255
_channels_warned_without_ids: set[str] = set()


def _idempotency_key(request: Request) -> str | None:
    for header in IDEMPOTENCY_HEADERS:
        value = request.headers.get(header, "").strip()
        if value:
            if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
                raise InvalidInput(
                    f"the {header} header is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
                )
            return value
    return None


def _check_retry(incoming: AgentMessageIn, delivered: Delivered) -> None:
    """Warn (once per channel) about a callback that names no id; refuse an idempotency key
    that an earlier, different message used, rather than answer for a message not stored."""
    channel_id = delivered.conversation.channel_id
    if incoming.retry_id is None:
        if channel_id not in _channels_warned_without_ids:
            _channels_warned_without_ids.add(channel_id)
            log.warning(
                "reply callback on channel %s names no message id (message.id, messageId, id) "
                "and has no Idempotency-Key or X-Request-Id header: a retried callback will be "
                "delivered again (logged once per channel)",
                channel_id,
            )
        return
    if delivered.duplicate and incoming.de_message_id is None:
        stored = delivered.message
        same = stored.text == incoming.text and (
            not incoming.content or stored.content == incoming.content
        )
        if not same:
            raise IdempotencyKeyReused(
                f"idempotency key {incoming.idempotency_key!r} was used by an earlier, "
                f"different message ({stored.id}) on this channel"
            )


def _agent_message(body: AgentMessageBody, request: Request) -> AgentMessageIn:
    content = body.message_content.model_dump(by_alias=True) if body.message_content else {}
    if not content and not body.attachments:
        raise InvalidInput("messageContent or attachments is required")
    text: str | None = None
    if content:
        content, text = rich.normalize(content)
    if not (text or "").strip() and not body.attachments:
        raise InvalidInput("the message has no text and no attachments: nothing to show")
    return AgentMessageIn(
        thread_id=body.thread.id_on_external_platform if body.thread else None,
        de_thread_id=body.thread.id if body.thread else None,
        de_message_id=body.de_message_id,
        content=content,
        text=text,
        attachments=[a.model_dump(by_alias=True, exclude_none=True) for a in body.attachments],
        author=body.author_user,
        brand=body.brand.model_dump(by_alias=True, exclude_none=True) if body.brand else None,
        recipients=body.end_user_recipients or body.recipients,
        idempotency_key=None if body.de_message_id else _idempotency_key(request),
    )


def _outbound_response(delivered: Delivered) -> OutboundResponse:
    customer = delivered.customer
    identity = IdentityOut(
        idOnExternalPlatform=customer.id,
        firstName=customer.first_name,
        lastName=customer.last_name,
        nickname=customer.nickname,
    )
    created = datetime.fromtimestamp(delivered.message.created_at / 1000, tz=UTC)
    return OutboundResponse(
        message=OutboundMessageOut(
            idOnExternalPlatform=delivered.message.id,
            createdAtWithMilliseconds=iso_millis(created),
        ),
        thread=ThreadOut(idOnExternalPlatform=delivered.conversation.id),
        endUserIdentities=[identity],
        recipients=[identity],
    )


def _validation_failed(exc: RecipientRejected) -> JSONResponse:
    return JSONResponse(
        {
            "displayErrorMessage": "The recipient cannot be reached on this channel.",
            "errorCode": "outboundValidationFailed",
            "errors": [{"path": ["idOnExternalPlatform"], "message": exc.detail}],
        },
        status_code=400,
    )


@router.post(
    "/1.0/posts/{post_id}/messages",
    response_model=LegacyReplyResponse,
    summary="Agent reply, legacy style (the 'DFO 3.0 Outbound API' box unchecked)",
    openapi_extra=documented_body(AgentMessageBody),
)
async def legacy_reply(post_id: str, request: Request) -> Response:
    # Lean (`byoc.api.lean`), answered by `byoc.api.hot`: one of the two busiest routes.
    client = await authenticated_client(
        request, token_issuer_of(request), active_clients_of(request)
    )
    body = parse_body(AgentMessageBody, await request.body(), request.headers.get("content-type"))
    log.debug(
        "legacy reply body for post %s: %s", post_id, body.model_dump(exclude={"message_content"})
    )
    incoming = _agent_message(body, request)
    if incoming.de_thread_id is None:
        incoming = AgentMessageIn(**{**incoming.__dict__, "de_thread_id": post_id})
    delivered = await conversations_of(request).receive_agent_message(
        incoming, channel_id=None, tenant_id=client.tenant_id
    )
    _check_retry(incoming, delivered)
    return json_response(LegacyReplyResponse(idOnExternalPlatform=delivered.message.id))


@router.post(
    "/2.0/channel/{channel_id}/outbound",
    response_model=OutboundResponse,
    summary="Agent reply or agent-initiated outbound, DFO 3.0 style",
    responses={400: {"description": "outboundValidationFailed"}},
    openapi_extra=documented_body(AgentMessageBody),
)
async def dfo3_outbound(channel_id: str, request: Request) -> Response:
    # Lean (`byoc.api.lean`), answered by `byoc.api.hot`: one of the two busiest routes.
    client = await authenticated_client(
        request, token_issuer_of(request), active_clients_of(request)
    )
    body = parse_body(AgentMessageBody, await request.body(), request.headers.get("content-type"))
    incoming = _agent_message(body, request)
    conversations = conversations_of(request)
    try:
        delivered = await conversations.receive_agent_message(
            incoming, channel_id=channel_id, tenant_id=client.tenant_id
        )
    except ConversationNotFound:
        # A thread unknown here, with its recipients: an agent starting one (contract §2.3).
        # A known thread is a reply, ended or not (CXone names the recipients on every reply).
        if not incoming.recipients:
            raise
        try:
            delivered = await conversations.open_agent_outbound(
                incoming, channel_id=channel_id, tenant_id=client.tenant_id
            )
        except RecipientRejected as exc:
            return _validation_failed(exc)
    _check_retry(incoming, delivered)
    return Response(
        _outbound_response(delivered).model_dump_json(exclude_none=True),
        media_type="application/json",
    )


@router.post(
    "/1.0/channel/{channel_id}/thread/{thread_id}/sender-action",
    status_code=204,
    summary="Agent typing indicator",
)
async def agent_sender_action(
    channel_id: str,
    thread_id: str,
    body: SenderActionBody,
    conversations: ConversationsDep,
    client: CurrentClient,
) -> Response:
    action = body.sender_action.action
    if action not in ("isTypingOn", "isTypingOff"):
        raise InvalidInput(f"senderAction.action {action!r} is not isTypingOn or isTypingOff")
    brand = body.brand.model_dump(by_alias=True, exclude_none=True) if body.brand else None
    await conversations.agent_typing(
        channel_id,
        thread_id,
        typing=action == "isTypingOn",
        tenant_id=client.tenant_id,
        brand=brand,
        author=body.author_user,
    )
    return Response(status_code=204)


@router.post(
    "/1.0/channel/{channel_id}/recipients/validation",
    summary="Validate the recipients of an agent-initiated outbound",
    responses={400: {"description": "outboundValidationFailed"}},
)
async def validate_recipients(
    channel_id: str,
    body: RecipientValidationBody,
    conversations: ConversationsDep,
    client: CurrentClient,
) -> Response:
    recipients: list[dict[str, Any]] = body.end_user_recipients or body.recipients
    brand = body.brand.model_dump(by_alias=True, exclude_none=True) if body.brand else None
    try:
        await conversations.validate_recipients(
            channel_id, recipients, tenant_id=client.tenant_id, brand=brand
        )
    except RecipientRejected as exc:
        return _validation_failed(exc)
    return JSONResponse({"valid": True})
