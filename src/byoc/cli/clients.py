"""`byoc clients`: the credentials CXone uses at the token endpoint, one tenant per client."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from byoc.box.credentials import hash_secret, new_client_credentials
from byoc.cli._common import SubParsers, add, when, with_db
from byoc.settings import Settings
from byoc.store import Database, clients, tenants
from byoc.tenancy import DEFAULT_TENANT_ID


def cmd_clients_create(settings: Settings, args: argparse.Namespace) -> int:
    client_id, secret = new_client_credentials()
    tenant_id: str = args.tenant

    async def work(db: Database) -> int:
        if await db.run_read(tenants.get_tenant, tenant_id) is None:
            print(f"no tenant {tenant_id!r}: add it with `byoc tenants add` first", file=sys.stderr)
            return 2
        await db.run_write(
            clients.insert_client, client_id, args.name, hash_secret(secret), tenant_id
        )
        return 0

    status = asyncio.run(with_db(settings, work))
    if status:
        return status
    if args.json:
        print(
            json.dumps(
                {
                    "client_id": client_id,
                    "client_secret": secret,
                    "name": args.name,
                    "tenant": tenant_id,
                }
            )
        )
    else:
        print(f"client_id:     {client_id}")
        print(f"client_secret: {secret}")
        print(f"tenant:        {tenant_id}")
        print("The secret is shown once and stored only as a hash. Enter both in CXone's")
        print("Bring Your Own Channel integration (Client ID / Client Secret).")
    return 0


def cmd_clients_list(settings: Settings, _args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        listed = await db.run_read(clients.list_clients)
        print(f"{'CLIENT ID':24} {'NAME':20} {'TENANT':16} {'CREATED':20} REVOKED")
        for c in listed:
            print(
                f"{c.client_id:24} {c.name:20} {c.tenant_id:16} {when(c.created_at):20}"
                f" {when(c.revoked_at)}"
            )
        return 0

    return asyncio.run(with_db(settings, work))


def cmd_clients_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        revoked = await db.run_write(clients.revoke_client, args.client_id)
        if not revoked:
            print(f"no active client {args.client_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.client_id}; its tokens stop working within five seconds")
        return 0

    return asyncio.run(with_db(settings, work))


def cmd_clients_rotate(settings: Settings, args: argparse.Namespace) -> int:
    _, secret = new_client_credentials()

    async def work(db: Database) -> int:
        if not await db.run_write(clients.rotate_secret, args.client_id, hash_secret(secret)):
            print(f"no active client {args.client_id!r}", file=sys.stderr)
            return 1
        return 0

    status = asyncio.run(with_db(settings, work))
    if status:
        return status
    if args.json:
        print(json.dumps({"client_id": args.client_id, "client_secret": secret}))
    else:
        print(f"client_id:     {args.client_id}")
        print(f"client_secret: {secret}")
        print(
            "The old secret stops working within 5 s on every instance; tokens already issued "
            "with it last until they expire. Enter the new secret in CXone's integration."
        )
    return 0


def register(sub: SubParsers) -> None:
    clients = sub.add_parser("clients", help="credentials CXone uses at the token endpoint")
    csub = clients.add_subparsers(dest="clients_command", required=True)
    create = add(csub, "create", cmd_clients_create, "create a client id and secret (shown once)")
    create.add_argument("--name", default="cxone", help="a label for the client (default: cxone)")
    create.add_argument(
        "--tenant",
        default=DEFAULT_TENANT_ID,
        help="the tenant whose channels the client may act on (default: the default tenant)",
    )
    create.add_argument("--json", action="store_true", help="print JSON")
    add(csub, "list", cmd_clients_list, "list clients")
    revoke = add(csub, "revoke", cmd_clients_revoke, "revoke a client and its tokens")
    revoke.add_argument("client_id")
    rotate = add(csub, "rotate", cmd_clients_rotate, "give a client a new secret (shown once)")
    rotate.add_argument("client_id")
    rotate.add_argument("--json", action="store_true", help="print JSON")
