"""`byoc tenants`: the CXone tenants (brands) this deployment serves, and their discovery."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from byoc.cli._common import SubParsers, add, fail, with_db
from byoc.cxone import CxoneEndpoints, CxoneError, discover_endpoints
from byoc.http import HttpClient
from byoc.settings import Settings
from byoc.store import Database, tenants
from byoc.store.records import Tenant

# The secrets may come from the environment instead of the command line, where `ps` and the
# shell's history would show them.
SECRET_VARIABLES = {
    "access_key_secret": "BYOC_TENANT_ACCESS_KEY_SECRET",
    "client_secret": "BYOC_TENANT_CLIENT_SECRET",
}


def cmd_tenants_add(settings: Settings, args: argparse.Namespace) -> int:
    for name, variable in SECRET_VARIABLES.items():
        setattr(args, name, getattr(args, name) or os.environ.get(variable))
    missing = [f"--{n.replace('_', '-')} (or {v})" for n, v in SECRET_VARIABLES.items()
               if not getattr(args, n)]  # fmt: skip
    if missing:
        return fail("give " + " and ".join(missing), 2)
    if args.discover:
        endpoints = discover_for_cli(settings, args.tenant_id, args.discovery_url)
        if endpoints is None:
            return 1
        args.api_url = args.api_url or endpoints.de_api_url
        args.token_url = args.token_url or endpoints.token_url
        print(f"discovered api url {args.api_url}, token url {args.token_url}")
    elif not args.api_url or not args.token_url:
        return fail("give --api-url and --token-url, or --discover", 2)
    tenant = Tenant(
        id=args.id,
        name=args.name or args.id,
        brand_id=args.brand_id,
        cxone_tenant_id=args.tenant_id,
        business_unit_id=args.business_unit_id,
        api_url=args.api_url,
        token_url=args.token_url,
        access_key_id=args.access_key_id,
        access_key_secret=args.access_key_secret,
        client_id=args.client_id,
        client_secret=args.client_secret,
    )

    async def work(db: Database) -> int:
        await db.run_write(tenants.upsert_tenant, tenant)
        print(f"tenant {tenant.id} saved (brand {tenant.brand_id})")
        return 0

    return asyncio.run(with_db(settings, work))


def cmd_tenants_list(settings: Settings, _args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        listed = await db.run_read(tenants.list_tenants)
        print(f"{'ID':16} {'BRAND':8} {'TENANT':38} API")
        for t in listed:
            print(f"{t.id:16} {t.brand_id:<8} {t.cxone_tenant_id:38} {t.api_url}")
        return 0

    return asyncio.run(with_db(settings, work))


async def discover(settings: Settings, tenant_id: str, discovery_url: str | None) -> CxoneEndpoints:
    async with HttpClient(max_connections=1) as http:
        return await discover_endpoints(
            http,
            discovery_url or settings.cxone_discovery_url,
            tenant_id,
            timeout=settings.cxone_timeout_seconds,
        )


def discover_for_cli(
    settings: Settings, tenant_id: str, discovery_url: str | None
) -> CxoneEndpoints | None:
    """Discovered endpoints, or None after printing why not."""
    try:
        return asyncio.run(discover(settings, tenant_id, discovery_url))
    except CxoneError as exc:
        fail(f"discovery of tenant {tenant_id} failed: {exc}")
        return None


def cmd_tenants_discover(settings: Settings, args: argparse.Namespace) -> int:
    tenant_id = args.tenant_id or settings.cxone_tenant_id
    endpoints = discover_for_cli(settings, tenant_id, args.discovery_url)
    if endpoints is None:
        return 1
    document: dict[str, Any] = {
        "tenantId": tenant_id,
        "apiUrl": endpoints.de_api_url,
        "tokenUrl": endpoints.token_url,
        "area": endpoints.area,
        "domain": endpoints.domain,
    }
    if args.json:
        print(json.dumps(document))
    else:
        print(f"tenant:    {tenant_id}")
        print(f"area:      {endpoints.area or '-'} ({endpoints.domain or '-'})")
        print(f"api url:   {endpoints.de_api_url}")
        print(f"token url: {endpoints.token_url}")
        print("Use them as BYOC_CXONE_API_URL / BYOC_CXONE_TOKEN_URL, or run")
        print("`byoc tenants add --discover ...` to store them with a tenant.")
    return 0


def register(sub: SubParsers) -> None:
    tenants = sub.add_parser("tenants", help="CXone tenants (brands) served by this deployment")
    tsub = tenants.add_subparsers(dest="tenants_command", required=True)
    tadd = add(tsub, "add", cmd_tenants_add, "add or update a tenant")
    tadd.add_argument("--id", required=True, help="local name of the tenant")
    tadd.add_argument("--name")
    tadd.add_argument("--brand-id", type=int, required=True)
    tadd.add_argument("--tenant-id", required=True, help="the CXone tenant GUID")
    tadd.add_argument("--business-unit-id", type=int, required=True)
    tadd.add_argument("--api-url", help="DE API base, ending in /dfo/3.0")
    tadd.add_argument("--token-url")
    tadd.add_argument(
        "--discover",
        action="store_true",
        help="fill --api-url/--token-url from the tenant's discovery document",
    )
    tadd.add_argument("--discovery-url", help="default: BYOC_CXONE_DISCOVERY_URL")
    tadd.add_argument("--access-key-id", required=True)
    tadd.add_argument("--access-key-secret", help="default: $BYOC_TENANT_ACCESS_KEY_SECRET")
    tadd.add_argument("--client-id", required=True, help="registered CXone application id")
    tadd.add_argument("--client-secret", help="default: $BYOC_TENANT_CLIENT_SECRET")
    add(tsub, "list", cmd_tenants_list, "list tenants")
    tdisc = add(tsub, "discover", cmd_tenants_discover, "show a tenant's regional endpoints")
    tdisc.add_argument("--tenant-id", help="the CXone tenant GUID (default: BYOC_CXONE_TENANT_ID)")
    tdisc.add_argument("--discovery-url", help="default: BYOC_CXONE_DISCOVERY_URL")
    tdisc.add_argument("--json", action="store_true")
