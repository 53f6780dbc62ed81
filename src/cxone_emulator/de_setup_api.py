"""The DE API's set-up side (contract §3.7): channels, custom-field definitions, temporary
attachments; and the routes that take no bearer token (the one-time-token exchange of the
Action URL page, attachment downloads)."""

from __future__ import annotations

import base64
import binascii
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse

from cxone_emulator.clock import iso_from_epoch
from cxone_emulator.errors import CxoneError, invalid, not_found
from cxone_emulator.state import EmulatorState
from cxone_emulator.urls import root_url
from cxone_emulator.validation import (
    JsonObject,
    one_of,
    optional_bool,
    optional_int,
    optional_list,
    read_json_object,
    required_bool,
    required_str,
)

if TYPE_CHECKING:
    from cxone_emulator.de_api import DeService

FIELD_TYPES = ("text", "email", "list")
_CHANNEL_BOOLEANS = (
    "isLiveChat",
    "hasOutboundFlow",
    "hasManualOutboundFlow",
    "hasAbilityToSendFiles",
    "canSendSenderActions",
)


def _numeric(body: JsonObject, path: str) -> int:
    value = body.get(path)
    if value is None:
        raise invalid(path, "is required", "MissingField")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(path, "must be an integer", "InvalidType")
    return value


def build_setup_router(state: EmulatorState, service: DeService) -> APIRouter:
    """Included by the DE router, under its base path and bearer check."""
    config = state.config
    router = APIRouter()

    # -- channels (§3.7) -------------------------------------------------------------------
    @router.post("/channels")
    async def upsert_channel(request: Request) -> JSONResponse:
        body = await read_json_object(request)
        channel_id = required_str(body, "id")
        required_str(body, "idOnExternalPlatform")
        integration_id = required_str(body, "channelIntegrationId")
        required_str(body, "realExternalPlatformId")
        required_str(body, "name")
        required_bool(body, "isPrivate")
        required_bool(body, "hasTreeStructure")
        for name in _CHANNEL_BOOLEANS:
            optional_bool(body, name)
        optional_int(body, "ownerUserId")
        if integration_id not in state.integrations:
            raise not_found(
                f"channel integration {integration_id!r}",
                "IntegrationNotFound",
                "channelIntegrationId",
            )
        channel = {name: False for name in _CHANNEL_BOOLEANS} | body
        state.channels[channel_id] = channel
        return JSONResponse(channel)

    @router.get("/channels")
    async def list_channels() -> JSONResponse:
        return JSONResponse({"data": list(state.channels.values())})

    @router.get("/channels/{channel_id}")
    async def get_channel(channel_id: str) -> JSONResponse:
        return JSONResponse(service.channel(channel_id))

    @router.delete("/channels/{channel_id}")
    async def delete_channel(channel_id: str) -> Response:
        service.channel(channel_id)
        del state.channels[channel_id]
        return Response(status_code=204)

    # -- customers, attachments (§3.7) -----------------------------------------------------
    @router.put("/customers/custom-field-definitions")
    async def upsert_custom_field(request: Request) -> JSONResponse:
        body = await read_json_object(request)
        ident = required_str(body, "ident")
        label = required_str(body, "label")
        kind = one_of(body, "type", FIELD_TYPES)
        is_required = optional_bool(body, "isRequired")
        is_editable = optional_bool(body, "isEditable")
        values = optional_list(body, "values")
        if kind == "list" and not values:
            raise invalid("values", "is required when type is list", "MissingField")
        definition: JsonObject = {
            "ident": ident,
            "label": label,
            "type": kind,
            "isRequired": bool(is_required),
            "isEditable": True if is_editable is None else is_editable,
        }
        if values is not None:
            definition["values"] = values
        state.custom_field_definitions[ident] = definition
        return JSONResponse(definition)

    @router.get("/customers/custom-field-definitions")
    async def list_custom_fields() -> JSONResponse:
        return JSONResponse({"data": list(state.custom_field_definitions.values())})

    @router.post("/attachments/temporary")
    async def upload_attachment(request: Request) -> JSONResponse:
        body = await read_json_object(request)
        encoded = required_str(body, "content")
        mime_type = required_str(body, "mimeType")
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise invalid("content", "must be base64", "InvalidValue") from exc
        attachment = state.store_attachment(content, mime_type)
        return JSONResponse(
            {
                "id": attachment.id,
                "url": f"{root_url(request, config)}/attachments/{attachment.id}",
                "expireAt": iso_from_epoch(attachment.expires_at),
            }
        )

    return router


def build_public_router(state: EmulatorState) -> APIRouter:
    """DE routes that take no bearer token: the one-time-token exchange and attachment URLs."""
    config = state.config
    router = APIRouter()

    @router.post(f"{config.base_path}/one-time-token/verification")
    async def verify_one_time_token(request: Request) -> JSONResponse:
        # No bearer here: the token exchanged is how the Action URL page gets one (§2.6).
        body = await read_json_object(request)
        brand_id = _numeric(body, "brandId")
        user_id = _numeric(body, "userId")
        token = required_str(body, "token")
        one_of(body, "purpose", ("channel-integration",))
        if brand_id != config.brand_id or not state.one_time_tokens.redeem(token, user_id):
            raise CxoneError(401, "one-time token is invalid, expired or used", "InvalidToken")
        return JSONResponse(
            {
                "brand": {
                    "id": config.brand_id,
                    "tenantId": config.tenant_id,
                    "businessUnitId": config.business_unit_id,
                },
                "user": {"id": user_id, "firstName": "Emulated", "surname": "Admin"},
                "accessToken": state.tokens.issue(config.token_ttl_seconds),
            }
        )

    @router.get("/attachments/{attachment_id}")
    async def download_attachment(attachment_id: str) -> Response:
        attachment = state.attachments.get(attachment_id)
        if attachment is None or attachment.expires_at <= time.time():
            raise not_found(f"attachment {attachment_id!r}", "AttachmentNotFound")
        return Response(attachment.content, media_type=attachment.mime_type)

    return router
