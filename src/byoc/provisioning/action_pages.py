"""The Action, Reconnect and Remove URL pages CXone's admin UI opens (contract §2.6).

Server-rendered HTML without scripts; every value is escaped. The flow:

- `GET /integration/action?userId=&brandId=&token=&backUrl=[&apiHost=][&channelIntegrationId=]`
  finds the tenant whose brand id is `brandId` (404 page otherwise), exchanges the one-time
  `token` with that tenant's DE API (single use), and shows a form to name the channel. The
  form carries a signed, short-lived form token (HMAC with a key derived from
  `BYOC_TOKEN_SIGNING_KEY`) that binds the tenant, the verified user, the channel integration,
  `backUrl` and the channel id to be created: it is the CSRF protection and makes a double
  submit create one channel, not two.
- `POST /integration/action` checks that token and provisions exactly as `byoc channels create`
  does (`byoc.provisioning.channels.create_channel`), with the verified user as `ownerUserId`,
  then answers 303 to `backUrl`, else a page with the result.
- `GET /integration/remove?channelId=&token=&brandId=&userId=[&backUrl=]` verifies the one-time
  token and deletes the DE channel and the mapping (contract decision).
- `GET /integration/reconnect?...` verifies the token and checks the channel on both sides.

Decisions: `backUrl` is followed (303) only when it is an
http(s) URL on a host of `BYOC_ACTION_BACK_URL_HOSTS` (CXone's domains by default); any other
is dropped, so a crafted link cannot make these pages send an admin on to a host someone else
chose. `apiHost` is never called — the one-time token is sent only to the tenant's
configured DE API, so a crafted link cannot make us hand a token to another host. The
`accessToken` DE returns is not kept: the tenant's own client creates the channel, and the
verification serves to authenticate the admin. Pages answer `Referrer-Policy: no-referrer`
because their URL carries the one-time token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from byoc.api.deps import DatabaseDep, LinkThrottleDep, SettingsDep, TenantsDep
from byoc.channels import WEBCHAT, WEBHOOK
from byoc.cxone import CxoneAuthError, CxoneError, DeClient
from byoc.errors import ByocError, InvalidInput, NotFound
from byoc.outbound import OutboundPolicy
from byoc.provisioning.channels import (
    NewChannel,
    ProvisioningError,
    back_url_of,
    create_channel,
    delete_channel,
    new_channel_id,
    validate,
)
from byoc.provisioning.form_tokens import FormClaims, FormTokens
from byoc.provisioning.link_throttle import LinkThrottle
from byoc.provisioning.pages_html import error_page, finished, form_page
from byoc.settings import Settings
from byoc.store import Database, channels, tenants
from byoc.store.records import Tenant
from byoc.tenancy import TenantClients

log = logging.getLogger(__name__)

router = APIRouter(prefix="/integration", tags=["CXone admin pages"], include_in_schema=False)


def _form_tokens(settings: Settings) -> FormTokens:
    return FormTokens(settings.token_signing_key.get_secret_value())


# --- shared steps -----------------------------------------------------------------------------


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _tenant_for_brand(db: Database, brand_id: int) -> Tenant | None:
    listed = await db.run_read(tenants.list_tenants)
    return next((t for t in listed if t.brand_id == brand_id), None)


@dataclass(frozen=True)
class _Verified:
    tenant: Tenant
    client: DeClient
    user_id: int


async def _verify(
    db: Database, tenant_clients: TenantClients, request: Request, throttle: LinkThrottle
) -> _Verified | HTMLResponse:
    """Resolve the brand's tenant and spend the one-time token; an error page otherwise. An
    address whose links failed too often is refused before CXone is asked (`LinkThrottle`)."""
    query = request.query_params
    brand_id, user_id = _int(query.get("brandId")), _int(query.get("userId"))
    token = query.get("token")
    if brand_id is None or user_id is None or not token:
        return error_page(
            "Cannot open this page",
            "The link lacks brandId, userId or token. Open it from CXone's admin UI.",
            400,
        )
    address = request.client.host if request.client else ""
    if (wait := throttle.wait(address)) is not None:
        return error_page(
            "Too many attempts", f"Too many links failed here; try again in {wait} s.", 429
        )
    verified = await _verified(db, tenant_clients, brand_id, user_id, token)
    if isinstance(verified, HTMLResponse) and verified.status_code in (401, 403, 404):
        throttle.failed(address)  # a brand not served here, a token refused or another's
    return verified


async def _verified(
    db: Database, tenant_clients: TenantClients, brand_id: int, user_id: int, token: str
) -> _Verified | HTMLResponse:
    tenant = await _tenant_for_brand(db, brand_id)
    if tenant is None:
        return error_page(
            "Unknown brand",
            f"This middleware serves no CXone brand {brand_id}. Add the tenant with "
            "`byoc tenants add`.",
            404,
        )
    client = await tenant_clients.for_tenant(tenant.id)
    try:
        verified = await client.verify_one_time_token(brand_id, user_id, token)
    except CxoneAuthError:
        return error_page(
            "Link expired",
            "CXone did not accept this link: it was already used or has expired. "
            "Open it again from CXone.",
            401,
        )
    except CxoneError as exc:
        log.warning("one-time token verification failed for brand %s: %s", brand_id, exc)
        return error_page("CXone is not reachable", "Please try again in a moment.", 502)
    if int(verified.brand.id) != tenant.brand_id:
        return error_page("Wrong brand", "CXone verified the link for another brand.", 403)
    return _Verified(tenant=tenant, client=client, user_id=int(verified.user.id))


# --- routes -----------------------------------------------------------------------------------


@router.get("/action")
async def action_page(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    tenant_clients: TenantsDep,
    throttle: LinkThrottleDep,
) -> Response:
    query = request.query_params
    integration_id = query.get("channelIntegrationId") or (
        settings.cxone_channel_integration_id or ""
    )
    if not integration_id:
        # Checked before the token is spent, so the admin can retry once it is set.
        return error_page(
            "Channel integration unknown",
            "Set BYOC_CXONE_CHANNEL_INTEGRATION_ID to the Integration ID CXone shows for this "
            "integration, or add ?channelIntegrationId=… to the Action URL.",
            400,
        )
    verified = await _verify(db, tenant_clients, request, throttle)
    if isinstance(verified, HTMLResponse):
        return verified
    claims = FormClaims(
        tenant_id=verified.tenant.id,
        brand_id=verified.tenant.brand_id,
        user_id=verified.user_id,
        integration_id=integration_id,
        channel_id=new_channel_id(),
        back_url=back_url_of(query.get("backUrl", ""), settings),
    )
    return form_page(_form_tokens(settings).issue(claims), claims)


async def _created_already(db: Database, claims: FormClaims) -> Response | None:
    """The page for a form whose channel is mapped to its tenant already (by the same form,
    submitted before); None when it is not."""
    existing = await db.run_read(channels.get_channel, claims.channel_id)
    if existing is not None and existing.tenant_id == claims.tenant_id:
        return finished(claims.back_url, "Channel created", f"Channel {existing.name} is ready.")
    return None


@router.post("/action")
async def create_from_form(
    request: Request, settings: SettingsDep, db: DatabaseDep, tenant_clients: TenantsDep
) -> Response:
    form = await request.form()

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    token = text("form_token")
    claims = _form_tokens(settings).verify(token)
    if claims is None:
        return error_page(
            "Form expired",
            "This form is expired or was not issued here. Open 'Add channel' again in CXone.",
            403,
        )
    # Checked at the page, checked again: a form issued before the hosts were narrowed.
    claims = replace(claims, back_url=back_url_of(claims.back_url, settings))
    if (done := await _created_already(db, claims)) is not None:
        return done

    adapter = text("adapter") or WEBHOOK
    webhook_url = text("webhook_url")
    allowed_origins = text("allowed_origins")
    origins = allowed_origins.replace(",", " ").split()
    new = NewChannel(
        id=claims.channel_id,
        name=text("name"),
        integration_id=claims.integration_id,
        tenant_id=claims.tenant_id,
        adapter=adapter,
        webhook_url=webhook_url or None,
        owner_user_id=claims.user_id,
        settings={"allowed_origins": origins} if adapter == WEBCHAT and origins else {},
    )
    fields = {
        "name": new.name,
        "adapter": adapter,
        "webhook_url": webhook_url,
        "allowed_origins": allowed_origins,
    }
    problems = validate(new, OutboundPolicy.of(settings))
    if problems:
        return form_page(token, claims, errors=problems, status=422, **fields)
    client = await tenant_clients.for_tenant(claims.tenant_id)
    try:
        created = await create_channel(db, client, new, policy=OutboundPolicy.of(settings))
    except ProvisioningError as exc:
        if (done := await _created_already(db, claims)) is not None:
            return done  # the same form submitted twice at once: the other submit mapped it
        log.warning("Action URL: creating channel %s failed: %s", claims.channel_id, exc)
        return form_page(token, claims, errors={"cxone": exc.detail}, status=502, **fields)
    except InvalidInput as exc:
        # The same form submitted twice at once: the other submit mapped the channel.
        if (done := await _created_already(db, claims)) is not None:
            return done
        return form_page(token, claims, errors={"channel": exc.detail}, status=422, **fields)
    except ByocError as exc:
        return error_page("Cannot create the channel", exc.detail, 404)
    log.info(
        "Action URL: channel %s created for tenant %s by user %s",
        created.channel.id,
        claims.tenant_id,
        claims.user_id,
    )
    return finished(claims.back_url, "Channel created", f"Channel {created.channel.name} is ready.")


@router.get("/remove")
async def remove_page(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    tenant_clients: TenantsDep,
    throttle: LinkThrottleDep,
) -> Response:
    query = request.query_params
    channel_id = query.get("channelId", "")
    if not channel_id:
        return error_page("Cannot remove", "The link names no channelId.", 400)
    verified = await _verify(db, tenant_clients, request, throttle)
    if isinstance(verified, HTMLResponse):
        return verified
    try:
        await delete_channel(
            db, verified.client, channel_id, tenant_id=verified.tenant.id, mapped_only=True
        )
    except NotFound:
        return error_page("Unknown channel", f"There is no channel {channel_id} here.", 404)
    except ProvisioningError as exc:
        return error_page("Cannot remove the channel", exc.detail, 502)
    log.info("Remove URL: channel %s deleted by user %s", channel_id, verified.user_id)
    back_url = back_url_of(query.get("backUrl", ""), settings)
    return finished(back_url, "Channel removed", f"Channel {channel_id} is deleted.")


@router.get("/reconnect")
async def reconnect_page(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    tenant_clients: TenantsDep,
    throttle: LinkThrottleDep,
) -> Response:
    query = request.query_params
    channel_id = query.get("channelId", "")
    verified = await _verify(db, tenant_clients, request, throttle)
    if isinstance(verified, HTMLResponse):
        return verified
    back_url = back_url_of(query.get("backUrl", ""), settings)
    if not channel_id:
        return finished(back_url, "Connected", f"Brand {verified.tenant.brand_id} is connected.")
    mapped = await db.run_read(channels.get_channel, channel_id)
    if mapped is None or mapped.tenant_id != verified.tenant.id:
        return error_page(
            "Channel not mapped",
            f"Channel {channel_id} is not mapped here; map it with `byoc channels add`.",
            404,
        )
    try:
        remote = await verified.client.list_channels()
    except CxoneError as exc:
        return error_page("CXone is not reachable", f"Please try again. ({exc})", 502)
    if not any(c.id == channel_id for c in remote):
        return error_page(
            "Channel missing in CXone",
            f"CXone no longer has channel {channel_id}; remove it and add a new one.",
            409,
        )
    return finished(back_url, "Connected", f"Channel {mapped.name} is connected.")
