"""Attachments customers upload from the widget, stored in the database and served to CXone
(and the widget) at an unguessable URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from byoc.api.deps import ClockDep, ConversationsDep, DatabaseDep, SettingsDep, WidgetLimitsDep
from byoc.channels import WEBCHAT
from byoc.channels.attachment_store import (
    INLINE_TYPES,
    attachment_url,
    content_disposition,
    media_type,
    new_access_token,
    safe_filename,
    well_formed_access_token,
)
from byoc.channels.webchat.config import parse_settings
from byoc.channels.webchat.identity import resolve_identity
from byoc.compare import same_secret
from byoc.conversations.models import CustomerProfile
from byoc.errors import (
    ChannelNotFound,
    ForbiddenOrigin,
    InvalidInput,
    NotFound,
    TooLarge,
    Unauthenticated,
    UnsupportedType,
)
from byoc.ids import new_id
from byoc.store import Connection, ReferenceChanged, attachments, channels
from byoc.store.records import StoredAttachment

router = APIRouter(prefix="/webchat/v1", tags=["Web chat"])

# Upload bodies may exceed the general request limit; this is the ceiling for any channel.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
CHUNK = 64 * 1024


class UploadedAttachment(BaseModel):
    id: str
    friendlyName: str
    url: str
    mimeType: str
    size: int


@router.post(
    "/channels/{channel_id}/attachments", status_code=201, response_model=UploadedAttachment
)
async def upload_attachment(
    channel_id: str,
    file: UploadFile,
    request: Request,
    db: DatabaseDep,
    conversations: ConversationsDep,
    app_settings: SettingsDep,
    limits: WidgetLimitsDep,
    clock: ClockDep,
    x_byoc_visitor: Annotated[str | None, Header()] = None,
    x_byoc_user: Annotated[str | None, Header()] = None,
    x_byoc_user_signature: Annotated[str | None, Header()] = None,
    x_byoc_user_expires: Annotated[str | None, Header()] = None,
) -> UploadedAttachment:
    channel = await db.run_read(channels.get_channel, channel_id)
    if channel is None or channel.adapter != WEBCHAT:
        raise ChannelNotFound(f"no web chat channel {channel_id!r}")
    settings = parse_settings(channel.settings)
    identity = resolve_identity(
        channel,
        visitor_id=x_byoc_visitor,
        user_id=x_byoc_user,
        signature=x_byoc_user_signature,
        expires=x_byoc_user_expires,
        allow_anonymous=settings.allow_anonymous,
    )
    address = request.client.host if request.client else ""
    if not identity.verified and not settings.origin_allowed(request.headers.get("origin")):
        # The widget always sends its page's Origin; a script elsewhere must not use a
        # visitor id as free file hosting.
        raise ForbiddenOrigin("anonymous uploads must come from a page this channel allows")
    await limits.take_upload(channel.id, identity.external_id, address)
    mime_type = (file.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if mime_type not in settings.attachment_types:
        raise UnsupportedType(
            f"{mime_type} files are not accepted; allowed: {', '.join(settings.attachment_types)}"
        )
    data = bytearray()
    while chunk := await file.read(CHUNK):
        data.extend(chunk)
        if len(data) > settings.max_attachment_bytes:
            raise TooLarge(f"attachments are limited to {settings.max_attachment_bytes} bytes")
    if not data:
        raise InvalidInput("the file is empty")
    friendly_name = safe_filename(file.filename)

    async def stored_for_customer() -> StoredAttachment:
        customer = await conversations.ensure_customer(
            channel.id, CustomerProfile(external_id=identity.external_id)
        )
        stored = StoredAttachment(
            id=new_id("att"),
            channel_id=channel.id,
            customer_id=customer.id,
            access_token=new_access_token(),
            friendly_name=friendly_name,
            mime_type=mime_type,
            size=len(data),
            created_at=clock.now_ms(),
            anonymous_from=None if identity.verified else address,
        )

        def store(conn: Connection) -> None:
            attachments.insert_attachment(conn, stored, bytes(data))
            if not identity.verified:  # a refusal rolls the INSERT back
                limits.check_upload_quota(
                    conn, channel_id=channel.id, customer_id=customer.id, address=address
                )

        await db.run_bulk_write(store)  # the file's bytes
        return stored

    try:
        stored = await stored_for_customer()
    except ReferenceChanged:
        # The customer was erased while the file was being stored: the file is the customer's
        # that this identity names now, as a message sent at that moment would be.
        stored = await stored_for_customer()
    return UploadedAttachment(
        id=stored.id,
        friendlyName=friendly_name,
        url=attachment_url(app_settings.public_url, stored.id, stored.access_token),
        mimeType=mime_type,
        size=stored.size,
    )


@router.get("/attachments/{attachment_id}/{token}")
async def download_attachment(attachment_id: str, token: str, db: DatabaseDep) -> Response:
    if not well_formed_access_token(token):
        # Not a token this service issues: refused before any lookup, whatever the id, so the
        # answer says nothing about which attachments exist. A well-formed wrong token is a 404.
        raise Unauthenticated("not an attachment token")
    found = await db.run_read(attachments.get_attachment, attachment_id, with_data=True)
    if found is None or not same_secret(token, found[0].access_token):
        raise NotFound("no such attachment")
    stored, data = found
    served = media_type(stored.mime_type)  # a row kept before types were checked, too
    disposition = "inline" if served in INLINE_TYPES else "attachment"
    return Response(
        content=data or b"",
        media_type=served,
        headers={
            "Content-Disposition": content_disposition(disposition, stored.friendly_name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400",
            # Nothing in it may run, load, submit a form or navigate, even if a browser
            # renders it as a page.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
