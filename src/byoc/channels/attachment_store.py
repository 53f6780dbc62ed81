"""Attachments kept by the middleware, served at unguessable URLs.

Two sources: files customers upload from the widget, and files agents send. CXone hands agent
attachments over as short-lived signed URLs (contract §2.3: fetch promptly, never store the URL),
so before an agent message goes to the customer each such file is fetched once and kept here;
the customer (and a transcript read a week later) gets a link that does not expire.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from byoc.http import HttpClient, HttpError, HttpRefusedAddress, HttpResponseTooLarge
from byoc.ids import new_id
from byoc.store import Database, attachments, messages, now_ms
from byoc.store.records import Customer, Message, StoredAttachment

log = logging.getLogger(__name__)

MAX_FETCH_BYTES = 25 * 1024 * 1024
# At most this many files of one agent message are kept here; the others keep their links.
MAX_KEPT_PER_MESSAGE = 10
# A signed storage URL may hand over to a CDN; more hops than this is not a file.
MAX_FETCH_REDIRECTS = 3


# An access token is `secrets.token_urlsafe(24)`: 32 characters of the URL-safe base64 alphabet.
ACCESS_TOKEN_BYTES = 24
_ACCESS_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


def new_access_token() -> str:
    """The token of an attachment's URL: 192 random bits."""
    return secrets.token_urlsafe(ACCESS_TOKEN_BYTES)


# A media type as RFC 6838 writes one, nothing around it: an upstream's `image/png, text/html`
# (which a browser reads as its last type) or a value that is not Latin-1 is no type.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
UNKNOWN_TYPE = "application/octet-stream"
# The only types served for display in the page (`inline`); everything else is a download.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def media_type(value: str | None) -> str:
    """`value`'s media type, its parameters dropped; `application/octet-stream` when it is not
    one (the type an attachment is stored and served with)."""
    bare = (value or "").split(";")[0].strip().lower()
    return bare if _MEDIA_TYPE.fullmatch(bare) else UNKNOWN_TYPE


def well_formed_access_token(token: str) -> bool:
    """Whether `token` has the alphabet and length of the tokens `new_access_token` makes."""
    return _ACCESS_TOKEN.fullmatch(token) is not None


class NotUploaded(LookupError):
    """An attachment id that names no upload of the customer's."""


def uploaded_links(
    conn: Any, public_url: str, customer_id: str, ids: list[str]
) -> list[dict[str, Any]]:
    """The links of `customer_id`'s uploads that `ids` name, in order; `NotUploaded` for an id
    that names none of theirs."""
    links: list[dict[str, Any]] = []
    for attachment_id in ids:
        found = attachments.get_attachment(conn, attachment_id)
        if found is None or found[0].customer_id != customer_id:
            raise NotUploaded(attachment_id)
        stored = found[0]
        url = attachment_url(public_url, stored.id, stored.access_token)
        links.append({"friendlyName": stored.friendly_name, "url": url})
    return links


def attachments_prefix(public_url: str) -> str:
    return f"{public_url.rstrip('/')}/webchat/v1/attachments/"


def attachment_url(public_url: str, attachment_id: str, token: str) -> str:
    return f"{attachments_prefix(public_url)}{attachment_id}/{token}"


def safe_filename(name: str | None) -> str:
    """A name that is safe in a header and a URL: no paths, quotes or control characters."""
    base = (name or "attachment").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "._- " else "_" for c in base).strip(" .")
    return cleaned[-120:] or "attachment"


def content_disposition(disposition: str, name: str) -> str:
    """The `Content-Disposition` header for a file named `name` (`safe_filename`'s): an ASCII
    `filename` for any client, and the name itself as `filename*` when it is not ASCII (RFC
    6266); a header is Latin-1 bytes, which most scripts are not."""
    fallback = "".join(c if c.isascii() else "_" for c in name)
    header = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


class AttachmentRehoster:
    def __init__(self, db: Database, http: HttpClient, public_url: str, *, timeout: float) -> None:
        self._db = db
        self._http = http
        self._public_url = public_url
        self._timeout = timeout

    def _is_ours(self, url: str) -> bool:
        return url.startswith(attachments_prefix(self._public_url))

    async def rehost(self, message: Message, customer: Customer) -> Message:
        """Fetch the foreign attachments of an agent message into the store (the first
        `MAX_KEPT_PER_MESSAGE`, all at once: the whole takes one fetch's time at most); return
        the message with links to our copies. Best effort: a file that cannot be fetched, or
        one past the first ones, keeps its original link, so an attachment never holds back
        the agent's message."""
        if message.sender == "customer" or not message.attachments:
            return message
        foreign = [
            (index, url)
            for index, attachment in enumerate(message.attachments)
            if (url := str(attachment.get("url") or "")).startswith(("http://", "https://"))
            and not self._is_ours(url)
        ]
        if len(foreign) > MAX_KEPT_PER_MESSAGE:
            log.warning(
                "agent message %s has %d attachments: the first %d are kept, the rest linked",
                message.id,
                len(foreign),
                MAX_KEPT_PER_MESSAGE,
            )
            foreign = foreign[:MAX_KEPT_PER_MESSAGE]
        results = await asyncio.gather(*(self._fetch(url) for _, url in foreign))
        fetched: list[tuple[int, StoredAttachment, bytes]] = []
        for (index, url), result in zip(foreign, results, strict=True):
            if result is None:
                continue
            data, mime_type = result
            name = message.attachments[index].get("friendlyName") or url.split("?")[0]
            fetched.append(
                (
                    index,
                    StoredAttachment(
                        id=new_id("att"),
                        channel_id=message.channel_id,
                        customer_id=customer.id,
                        access_token=new_access_token(),
                        friendly_name=safe_filename(name),
                        mime_type=mime_type,
                        size=len(data),
                        created_at=now_ms(),
                        referenced_at=now_ms(),  # the agent's message refers to it
                    ),
                    data,
                )
            )
        if not fetched:
            return message
        rehosted: list[dict[str, Any]] = [dict(a) for a in message.attachments]
        for index, stored, _ in fetched:
            rehosted[index] = {
                "friendlyName": stored.friendly_name,
                "url": attachment_url(self._public_url, stored.id, stored.access_token),
                "mimeType": stored.mime_type,
            }

        def keep(conn: Any) -> None:
            # The message's row before the files' (whose customer key locks the customer's):
            # the order in which an erasure locks the two.
            messages.set_message_attachments(conn, message.id, rehosted)
            for _, stored, data in fetched:
                attachments.insert_attachment(conn, stored, data)

        await self._db.run_bulk_write(keep)  # files' bytes
        return replace(message, attachments=rehosted)

    async def _fetch(self, url: str) -> tuple[bytes, str] | None:
        request = self._http.build_request("GET", url)
        request = replace(
            request, max_response_bytes=MAX_FETCH_BYTES, max_redirects=MAX_FETCH_REDIRECTS
        )
        try:
            response = await self._http.send(request, timeout=self._timeout)
        except HttpRefusedAddress as exc:
            log.warning("agent attachment %s refused: %s; link kept", url, exc)
            return None
        except HttpResponseTooLarge:
            log.warning("agent attachment %s is too large; link kept", url)
            return None
        except HttpError as exc:
            log.warning("agent attachment %s: %s; link kept", url, exc.__class__.__name__)
            return None
        if response.status_code >= 300:
            log.warning("agent attachment %s answered %s; link kept", url, response.status_code)
            return None
        return response.content, media_type(response.headers.get("content-type"))
