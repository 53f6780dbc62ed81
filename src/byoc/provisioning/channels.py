"""A channel in CXone and its local mapping, created and deleted as one step.

DE and the store share no transaction, so `create_channel` is ordered and compensated:

1. check locally (the tenant exists, the id was never used) and in DE (the id is free), so
   that step 4 can never delete a channel that existed before;
2. `POST /channels` (contract §3.7) — a 4xx there leaves nothing anywhere; a timeout or 5xx
   may have created the channel all the same, so it is deleted again (best effort);
3. insert the local mapping;
4. when that insert fails, `DELETE /channels/{id}` undoes step 2, and the error says whether
   the undo worked (and if not, exactly what is left in CXone). Unless the id was mapped to
   the same tenant meanwhile (a form submitted twice, a `byoc channels add` at the same
   moment): that mapping names the DE channel step 2 made, which is then kept.

`delete_channel` runs the other way round: DE first (a 404 there means already gone), then
the mapping is soft-deleted, so a CXone outage leaves the mapping in place to retry.

Every step reports a line to `progress`, which the CLI prints and tests can hook into.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from byoc.channels import ADAPTERS, WEBCHAT, WEBHOOK
from byoc.channels.webchat.config import parse_settings
from byoc.cxone import Channel as DeChannel
from byoc.cxone import ChannelCreate, CxoneError, CxoneNotFound, CxoneRejected, DeClient
from byoc.errors import ByocError, ChannelNotFound, InvalidInput, NotFound
from byoc.ids import new_id
from byoc.outbound import OutboundPolicy
from byoc.settings import Settings
from byoc.store import Connection, Database, StoreError, channels, now_ms, tenants
from byoc.store.records import Channel
from byoc.tenancy import DEFAULT_TENANT_ID

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Every channel this middleware creates is a BYOC ("custom") channel of its channel
# integration. `chat` names DE's own live chat, which a BYOC integration does not provide,
# so the web chat adapter is `custom` too and says `isLiveChat` instead.
REAL_EXTERNAL_PLATFORM_ID = "custom"

_CHANNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_MAX_NAME = 100


def _silent(_line: str) -> None:
    return None


class ChannelIdTaken(InvalidInput):
    """The channel id is mapped (or was once), or exists in CXone already."""

    slug = "channel-exists"


class ProvisioningError(ByocError):
    """A step talking to CXone or the store failed; `step` names it.

    `compensated` is None when nothing needed undoing, True when the DE channel created
    before the failure was deleted again, False when that undo failed too (see `detail`).
    """

    slug = "provisioning-failed"

    def __init__(self, detail: str, *, step: str, compensated: bool | None = None) -> None:
        super().__init__(detail)
        self.step = step
        self.compensated = compensated


@dataclass(frozen=True)
class NewChannel:
    """What `create_channel` needs; `id` and `secret` are generated when left out."""

    name: str
    integration_id: str
    tenant_id: str = DEFAULT_TENANT_ID
    adapter: str = WEBHOOK
    webhook_url: str | None = None
    owner_user_id: int | None = None
    id: str | None = None
    secret: str | None = None
    # Web chat widget settings (`byoc.channels.webchat.config`), e.g. `allowed_origins`.
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProvisionedChannel:
    channel: Channel
    remote: DeChannel


@dataclass(frozen=True)
class DeletedChannel:
    channel_id: str
    remote_deleted: bool
    local_deleted: bool


@dataclass(frozen=True)
class ChannelState:
    """One row of `channel_overview`: the mapping, the DE channel, or both."""

    id: str
    local: Channel | None
    remote: DeChannel | None


def new_channel_id() -> str:
    return new_id("chat")


def is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def back_url_of(value: str, settings: Settings) -> str:
    """`value` (an Action page's `backUrl`) when it is an http(s) URL on a host of
    `BYOC_ACTION_BACK_URL_HOSTS` or a subdomain of one; else "" (not followed, not shown).
    A backslash, a space or a control character refuses it: a browser may read its host
    otherwise than `urlsplit` does (`https://evil.example\\@allowed.example/`)."""
    if any(c == "\\" or c <= " " or c == "\x7f" for c in value):
        return ""
    try:
        host = (urlsplit(value).hostname or "") if is_http_url(value) else ""
    except ValueError:  # e.g. an unbalanced "[" in the host
        return ""
    allowed = settings.action_back_url_hosts.split(",")  # normalized by `Settings`
    if host and any(name and (host == name or host.endswith("." + name)) for name in allowed):
        return value
    return ""


def validate(request: NewChannel, policy: OutboundPolicy | None = None) -> dict[str, str]:
    """Problems of `request`, by field name; empty when it can be provisioned. `policy`: where
    a webhook may point (default: public addresses only)."""
    problems: dict[str, str] = {}
    name = request.name.strip()
    if not name:
        problems["name"] = "is required"
    elif len(name) > _MAX_NAME:
        problems["name"] = f"is longer than {_MAX_NAME} characters"
    elif _controls(name):
        problems["name"] = "contains control characters"
    if not request.integration_id.strip():
        problems["integration_id"] = (
            "is required: the Integration ID CXone shows for the BYOC integration "
            "(BYOC_CXONE_CHANNEL_INTEGRATION_ID)"
        )
    if request.adapter not in ADAPTERS:
        problems["adapter"] = "must be one of " + ", ".join(ADAPTERS)
    elif request.adapter == WEBHOOK:
        if not request.webhook_url:
            problems["webhook_url"] = "is required for the webhook adapter"
        elif _controls(request.webhook_url):
            problems["webhook_url"] = "contains control characters"
        # A name is checked again, resolved, at every delivery (`byoc.outbound_resolver`).
        elif problem := (policy or OutboundPolicy()).url_problem(request.webhook_url):
            problems["webhook_url"] = problem
    elif request.webhook_url:
        problems["webhook_url"] = "is only for the webhook adapter"
    if request.adapter == WEBCHAT:
        try:
            webchat = parse_settings(request.settings)
        except InvalidInput as exc:
            problems["settings"] = exc.detail
        else:
            if any(_controls(origin) for origin in webchat.allowed_origins):
                problems["settings"] = "an allowed origin contains control characters"
    elif request.settings:
        problems["settings"] = "are only for the webchat adapter"
    if request.id is not None and not _CHANNEL_ID.fullmatch(request.id):
        problems["id"] = "must be letters, digits and _ . : - (at most 128)"
    if request.owner_user_id is not None and request.owner_user_id <= 0:
        problems["owner_user_id"] = "must be a positive number"
    return problems


def _controls(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def de_channel(channel_id: str, request: NewChannel) -> ChannelCreate:
    """The `POST /channels` body for `request` (contract §3.7)."""
    return ChannelCreate(
        id=channel_id,
        id_on_external_platform=channel_id,
        channel_integration_id=request.integration_id.strip(),
        name=request.name.strip(),
        real_external_platform_id=REAL_EXTERNAL_PLATFORM_ID,
        # Private: one customer's conversation, not public posts on a page.
        is_private=True,
        has_tree_structure=False,
        is_live_chat=request.adapter == WEBCHAT,
        has_outbound_flow=True,
        has_manual_outbound_flow=True,
        has_ability_to_send_files=True,
        owner_user_id=request.owner_user_id,
    )


def _check_local(conn: Connection, tenant_id: str, channel_id: str) -> None:
    if tenants.get_tenant(conn, tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id!r}; add it with `byoc tenants add`")
    if channels.id_ever_used(conn, channel_id):
        raise ChannelIdTaken(f"channel id {channel_id!r} is or was mapped here already")


def _insert_if_unused(conn: Connection, channel: Channel) -> None:
    if channels.id_ever_used(conn, channel.id):
        raise ChannelIdTaken(f"channel id {channel.id!r} was mapped meanwhile")
    channels.insert_channel(conn, channel)


async def _unless_mapped_meanwhile(
    db: Database, tenant_id: str, channel_id: str, progress: Progress, failure: Exception
) -> None:
    """Before the DE channel is deleted again: `ChannelIdTaken` instead when the id has been
    mapped to the tenant meanwhile (the same form submitted twice, a `byoc channels add` at
    the same moment), since that mapping names the DE channel. A store that cannot say is
    taken for no: the undo goes ahead, as it did."""
    try:
        mapped = await db.run_read(channels.get_channel, channel_id)
    except StoreError:
        return
    if mapped is not None and mapped.tenant_id == tenant_id:
        progress(f"keeping DE channel {channel_id}: the mapping made meanwhile names it")
        raise ChannelIdTaken(
            f"channel id {channel_id!r} was mapped to tenant {tenant_id!r} meanwhile; that"
            " mapping uses the DE channel, which is kept"
        ) from failure


async def _undo_remote(client: DeClient, channel_id: str, progress: Progress) -> str | None:
    """Delete the DE channel again; None when it is gone, else why it could not be."""
    progress(f"deleting DE channel {channel_id} again")
    try:
        await client.delete_channel(channel_id)
    except CxoneNotFound:
        progress(f"DE channel {channel_id} does not exist (nothing to undo)")
        return None
    except CxoneError as exc:
        progress(f"could not delete DE channel {channel_id}: {exc}")
        return str(exc)
    progress(f"deleted DE channel {channel_id}")
    return None


async def create_channel(
    db: Database,
    client: DeClient,
    request: NewChannel,
    *,
    progress: Progress = _silent,
    policy: OutboundPolicy | None = None,
) -> ProvisionedChannel:
    """Create the DE channel and its local mapping, or neither (see the module docstring)."""
    problems = validate(request, policy)
    if problems:
        raise InvalidInput("; ".join(f"{key}: {text}" for key, text in problems.items()))
    channel_id = request.id or new_channel_id()
    channel = Channel(
        id=channel_id,
        tenant_id=request.tenant_id,
        adapter=request.adapter,
        name=request.name.strip(),
        webhook_url=request.webhook_url or None,
        secret=request.secret or secrets.token_urlsafe(32),
        created_at=now_ms(),
        settings=dict(request.settings),
    )

    progress(f"checking channel id {channel_id} in the local store")
    await db.run_read(_check_local, request.tenant_id, channel_id)

    progress(f"checking channel id {channel_id} in CXone")
    try:
        existing = await client.list_channels()
    except CxoneError as exc:
        raise ProvisioningError(f"could not list CXone channels: {exc}", step="check") from exc
    if any(remote.id == channel_id for remote in existing):
        raise ChannelIdTaken(
            f"channel {channel_id!r} exists in CXone already; "
            "map it with `byoc channels add` instead"
        )

    body = de_channel(channel_id, request)
    progress(
        f"creating DE channel {channel_id} (integration {body.channel_integration_id}"
        + (f", owner {body.owner_user_id}" if body.owner_user_id is not None else "")
        + ")"
    )
    try:
        remote = await client.create_channel(body)
    except CxoneRejected as exc:
        raise ProvisioningError(
            f"CXone refused the channel: {exc}; nothing was stored", step="cxone"
        ) from exc
    except CxoneError as exc:
        # A timeout or 5xx may still have created it: the id was free, so delete it.
        await _unless_mapped_meanwhile(db, request.tenant_id, channel_id, progress, exc)
        left = await _undo_remote(client, channel_id, progress)
        detail = f"CXone did not confirm the channel: {exc}; nothing was stored"
        if left is not None:
            detail += f"; channel {channel_id!r} may exist in CXone ({left})"
        raise ProvisioningError(detail, step="cxone", compensated=left is None) from exc
    progress(f"created DE channel {channel_id}")

    progress(f"storing the mapping of {channel_id} to tenant {request.tenant_id}")
    try:
        await db.run_write(_insert_if_unused, channel)
    except (StoreError, ByocError) as exc:
        log.warning("storing the mapping of channel %s failed: %s", channel_id, exc)
        progress(f"storing the mapping failed: {exc}")
        await _unless_mapped_meanwhile(db, request.tenant_id, channel_id, progress, exc)
        left = await _undo_remote(client, channel_id, progress)
        # The detail reaches an admin's browser (the Action page): the store's text, which names
        # statements, stays in the progress lines and the log.
        why = exc.detail if isinstance(exc, ByocError) else "the database refused it"
        if left is None:
            detail = f"storing the mapping failed ({why}); the DE channel was deleted again"
        else:
            detail = (
                f"storing the mapping failed ({why}) and DE channel {channel_id!r} is left in "
                f"CXone ({left}); delete it with `byoc channels delete {channel_id} "
                f"--tenant {request.tenant_id}`"
            )
        raise ProvisioningError(detail, step="store", compensated=left is None) from exc
    progress(f"channel {channel_id} is ready")
    return ProvisionedChannel(channel=channel, remote=remote)


async def delete_channel(
    db: Database,
    client: DeClient,
    channel_id: str,
    *,
    tenant_id: str | None = None,
    mapped_only: bool = False,
    progress: Progress = _silent,
) -> DeletedChannel:
    """Delete the DE channel, then soft-delete the mapping; `tenant_id` guards the mapping.
    `mapped_only`: a channel not mapped here is not touched in DE either (the Remove URL, whose
    channel id is whatever the link says: DE would delete any channel our access key may)."""
    mapped = await db.run_read(channels.get_channel, channel_id)
    if mapped is not None and tenant_id is not None and mapped.tenant_id != tenant_id:
        raise ChannelNotFound(f"channel {channel_id!r} does not belong to tenant {tenant_id!r}")
    if mapped is None and mapped_only:
        raise ChannelNotFound(f"channel {channel_id!r} is not one of this middleware's")

    progress(f"deleting DE channel {channel_id}")
    try:
        await client.delete_channel(channel_id)
        remote_deleted = True
        progress(f"deleted DE channel {channel_id}")
    except CxoneNotFound:
        remote_deleted = False
        progress(f"DE channel {channel_id} does not exist (already deleted)")
    except CxoneError as exc:
        raise ProvisioningError(
            f"CXone did not delete the channel: {exc}; the mapping is kept, try again",
            step="cxone",
        ) from exc

    local_deleted = False
    if mapped is not None:
        progress(f"removing the mapping of {channel_id}")
        local_deleted = await db.run_write(channels.delete_channel, channel_id)
    if not remote_deleted and not local_deleted:
        raise ChannelNotFound(f"channel {channel_id!r} exists neither in CXone nor here")
    progress(f"channel {channel_id} is deleted")
    return DeletedChannel(channel_id, remote_deleted=remote_deleted, local_deleted=local_deleted)


async def channel_overview(db: Database, client: DeClient, tenant_id: str) -> list[ChannelState]:
    """The tenant's mapped channels side by side with the channels DE lists for it."""
    mapped = await db.run_read(channels.list_channels)
    local = {c.id: c for c in mapped if c.tenant_id == tenant_id}
    remote = {c.id: c for c in await client.list_channels()}
    return [
        ChannelState(id=channel_id, local=local.get(channel_id), remote=remote.get(channel_id))
        for channel_id in sorted(local.keys() | remote.keys())
    ]
