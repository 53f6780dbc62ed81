"""`DeClient`: typed calls to the CXone Digital Engagement API (contract §3).

Every call carries a bearer token from the `TokenManager`, an explicit timeout and a JSON
body. A 401 invalidates that token and the call is retried once with a fresh one. Failures
arrive as the `byoc.cxone.errors` hierarchy, never as `byoc.http` ones.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from byoc.cxone import _wire
from byoc.cxone.errors import CxoneAuthError, CxoneError, CxoneRejected, CxoneUnavailable
from byoc.cxone.models import (
    Channel,
    ChannelCreate,
    Contact,
    CreateMessage,
    CreateMessageResponse,
    CustomFieldDefinition,
    CxoneEndpoints,
    OneTimeTokenVerification,
    OutboundMessage,
    TemporaryAttachment,
    ThreadInfo,
    iso_millis,
)
from byoc.cxone.tokens import TokenManager
from byoc.http import HttpClient, HttpRequest, HttpResponse

MessageStatus = Literal["delivered", "seen", "failed"]
SenderAction = Literal["isTypingOn", "isTypingOff"]
AbandonType = Literal["abandon", "expired", "shortAbandon"]

QueryParams = Sequence[tuple[str, str]]

CallObserver = Callable[[str, str, str, float], None]
"""Told `(method, path, outcome, seconds)` after every DE call; outcome is `ok`,
`unavailable`, `rejected`, `auth_error` or `error` (see `byoc.cxone.errors`)."""


def call_outcome(exc: CxoneError) -> str:
    if isinstance(exc, CxoneUnavailable):
        return "unavailable"
    if isinstance(exc, CxoneRejected):
        return "rejected"
    if isinstance(exc, CxoneAuthError):
        return "auth_error"
    return "error"


def _path(*segments: str) -> str:
    """`/a/b/c` with every segment percent-encoded, so an id cannot change the route."""
    return "".join("/" + quote(segment, safe="") for segment in segments)


class DeClient:
    """The DE API of one CXone tenant; `api_url` is its base including `/dfo/3.0`."""

    def __init__(
        self,
        http: HttpClient,
        api_url: str,
        tokens: TokenManager,
        *,
        timeout: float = 5.0,
        observer: CallObserver | None = None,
    ) -> None:
        self._http = http
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self.timeout = timeout
        self.observer = observer

    # --- messages ---------------------------------------------------------------------------

    async def create_message(
        self, channel_id: str, message: CreateMessage
    ) -> CreateMessageResponse:
        """Hand one customer message to DE (§3.2); a new thread opens a new contact."""
        response = await self._request(
            "POST", _path("channels", channel_id, "messages"), json=message.to_wire()
        )
        return _wire.decode(response, CreateMessageResponse)

    async def update_message_status(
        self,
        channel_id: str,
        message_id_on_external_platform: str,
        status: MessageStatus,
        *,
        updated_at: datetime | None = None,
        reason: str | None = None,
    ) -> None:
        """Report that an agent message was delivered, seen or failed on the platform (§3.3)."""
        body: dict[str, Any] = {
            "status": status,
            "updatedAt": iso_millis(updated_at or datetime.now(UTC)),
        }
        if reason is not None:
            body["reason"] = reason
        path = _path("channels", channel_id, "messages", message_id_on_external_platform, "status")
        await self._request("PUT", path, json=body)

    async def sender_action(
        self, channel_id: str, thread_id_on_external_platform: str, action: SenderAction
    ) -> None:
        """Show or hide the customer's typing indicator to the agent (§3.4)."""
        path = _path(
            "channels", channel_id, "threads", thread_id_on_external_platform, "sender-actions"
        )
        await self._request("POST", path, json={"action": action})

    async def send_outbound(
        self, channel_id: str, message: OutboundMessage
    ) -> CreateMessageResponse:
        """Send a middleware-originated message; a new thread opens a conversation (§3.5)."""
        response = await self._request(
            "POST", _path("channels", channel_id, "outbound"), json=message.to_wire()
        )
        return _wire.decode(response, CreateMessageResponse)

    # --- contacts ---------------------------------------------------------------------------

    async def get_contact(self, contact_id: str) -> Contact:
        response = await self._request("GET", _path("contacts", contact_id))
        return _wire.decode(response, Contact)

    async def list_contacts(
        self,
        *,
        channel_ids: Iterable[str] = (),
        statuses: Iterable[str] = (),
        end_user_ids: Iterable[str] = (),
    ) -> list[Contact]:
        params = [
            *(("channel[]", value) for value in channel_ids),
            *(("status[]", value) for value in statuses),
            *(("endUserIdOnExternalPlatform[]", value) for value in end_user_ids),
        ]
        response = await self._request("GET", "/contacts", params=params)
        return _wire.decode_list(response, Contact)

    async def set_contact_status(self, contact_id: str, status: str) -> Contact:
        """Move a contact to `status`; `closed` or `resolved` ends the case (§3.6)."""
        response = await self._request(
            "PUT", _path("contacts", contact_id, "status"), json={"status": status}
        )
        return _wire.decode(response, Contact)

    async def abandon_contact(self, contact_id: str, type: AbandonType = "abandon") -> Contact:
        """End a contact because the customer left (§3.6)."""
        response = await self._request(
            "POST", _path("contacts", contact_id, "abandon"), json={"type": type}
        )
        return _wire.decode(response, Contact)

    # --- threads ----------------------------------------------------------------------------

    async def list_threads(
        self, *, channel_id: str, thread_id_on_external_platform: str | None = None
    ) -> list[ThreadInfo]:
        """`GET /threads?…` (§3.6): a channel's threads, or the one with the given id."""
        params = [("channelId", channel_id)]
        if thread_id_on_external_platform is not None:
            params.append(("idOnExternalPlatform", thread_id_on_external_platform))
        response = await self._request("GET", "/threads", params=params)
        return _wire.decode_list(response, ThreadInfo)

    async def get_thread(self, channel_id: str, thread_id_on_external_platform: str) -> ThreadInfo:
        response = await self._request(
            "GET", _path("channels", channel_id, "threads", thread_id_on_external_platform)
        )
        return _wire.decode(response, ThreadInfo)

    async def update_thread(
        self,
        channel_id: str,
        thread_id_on_external_platform: str,
        *,
        can_add_more_messages: bool,
    ) -> ThreadInfo:
        """Open or close a thread to further customer messages (§3.6)."""
        response = await self._request(
            "PUT",
            _path("channels", channel_id, "threads", thread_id_on_external_platform),
            json={"canAddMoreMessages": can_add_more_messages},
        )
        return _wire.decode(response, ThreadInfo)

    # --- channels, customers, attachments, one-time tokens ---------------------------------

    async def create_channel(self, channel: ChannelCreate) -> Channel:
        """Create a channel, or update it when its id exists (§3.7)."""
        response = await self._request("POST", "/channels", json=channel.to_wire())
        return _wire.decode(response, Channel)

    async def list_channels(self) -> list[Channel]:
        response = await self._request("GET", "/channels")
        return _wire.decode_list(response, Channel)

    async def delete_channel(self, channel_id: str) -> None:
        await self._request("DELETE", _path("channels", channel_id))

    async def put_custom_field_definition(
        self, definition: CustomFieldDefinition
    ) -> CustomFieldDefinition:
        response = await self._request(
            "PUT", "/customers/custom-field-definitions", json=definition.to_wire()
        )
        return _wire.decode(response, CustomFieldDefinition)

    async def create_temporary_attachment(
        self, content: bytes, mime_type: str
    ) -> TemporaryAttachment:
        """Upload a file for a platform without URLs CXone can fetch; `url` expires."""
        body = {"content": base64.b64encode(content).decode("ascii"), "mimeType": mime_type}
        response = await self._request("POST", "/attachments/temporary", json=body)
        return _wire.decode(response, TemporaryAttachment)

    async def verify_one_time_token(
        self, brand_id: int | str, user_id: int | str, token: str
    ) -> OneTimeTokenVerification:
        """Exchange the `token` CXone put on the Action URL (contract §2.6).

        Sent without our bearer token: the exchange is how an admin's browser session gets
        one, and a 401 here refuses the one-time token (`CxoneAuthError`), not ours.
        """
        body = {
            "brandId": brand_id,
            "userId": user_id,
            "token": token,
            "purpose": "channel-integration",
        }
        response = await self._request(
            "POST", "/one-time-token/verification", json=body, bearer=False
        )
        return _wire.decode(response, OneTimeTokenVerification)

    async def ping(self) -> float:
        """Seconds one light authenticated call takes (token included when one is due)."""
        started = time.perf_counter()
        await self._request("GET", "/channels")
        return time.perf_counter() - started

    # --- the one way out --------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: QueryParams = (),
        bearer: bool = True,
    ) -> HttpResponse:
        if self.observer is None:
            return await self._exchange(method, path, json=json, params=params, bearer=bearer)
        started = time.perf_counter()
        outcome = "error"  # also for a cancelled call
        try:
            response = await self._exchange(method, path, json=json, params=params, bearer=bearer)
            outcome = "ok"
            return response
        except CxoneError as exc:
            outcome = call_outcome(exc)
            raise
        finally:
            self.observer(method, path, outcome, time.perf_counter() - started)

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: QueryParams = (),
        bearer: bool = True,
    ) -> HttpResponse:
        """Send with a bearer token; on 401 refresh the token once and send again."""
        if not bearer:
            return await _wire.send(
                self._http,
                self._build(method, path, None, json, params),
                time_limit=self.timeout,
                auth_statuses={401},
            )
        token = await self.tokens.get()
        response = await _wire.send(
            self._http,
            self._build(method, path, token, json, params),
            time_limit=self.timeout,
            pass_statuses={401},
        )
        if response.status_code != 401:
            return response
        self.tokens.invalidate(token)
        token = await self.tokens.get()
        return await _wire.send(
            self._http,
            self._build(method, path, token, json, params),
            time_limit=self.timeout,
            auth_statuses={401},
        )

    def _build(
        self,
        method: str,
        path: str,
        token: str | None,
        json: Mapping[str, Any] | None,
        params: QueryParams,
    ) -> HttpRequest:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self._http.build_request(
            method,
            self.api_url + path,
            json=json,
            params=params,
            headers=headers,
        )


async def discover_endpoints(
    http: HttpClient,
    discovery_url: str,
    tenant_id: str,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109
) -> CxoneEndpoints:
    """A tenant's API and auth endpoints from `/.well-known/cxone-configuration` (§3)."""
    request = http.build_request(
        "GET",
        discovery_url.rstrip("/") + "/.well-known/cxone-configuration",
        params={"tenantId": tenant_id},
        headers={"Accept": "application/json"},
    )
    response = await _wire.send(http, request, time_limit=timeout)
    return _wire.decode(response, CxoneEndpoints)
