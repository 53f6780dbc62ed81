"""The `byoc` command line: serve, migrate, manage credentials, tenants, channels and the outbox."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from byoc import __version__
from byoc.box.credentials import hash_secret, new_client_credentials
from byoc.channels.webchat.config import parse_settings
from byoc.errors import InvalidInput
from byoc.outbox import queue
from byoc.provisioning import commands as provisioning
from byoc.settings import PlaceholderSecretError, Settings, settings_error_lines
from byoc.store import Database, StoreError
from byoc.store import repositories as repo
from byoc.store.migrations import current_version, latest_version, upgrade
from byoc.store.records import Channel, Tenant
from byoc.tenancy import default_tenant


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[int]]) -> int:
    db = Database(settings.database_url)
    try:
        await upgrade(db)
        async with db.write() as conn:
            await repo.upsert_tenant(conn, default_tenant(settings))
        return await work(db)
    finally:
        await db.close()


# --- commands ----------------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from byoc.app import create_app
    from byoc.ops.logging import configure as configure_logging

    configure_logging(settings)  # JSON lines, uvicorn's own loggers included
    app = create_app(settings)
    # Everything loaded so far (FastAPI, SQLAlchemy, pydantic, our modules) lives as long as the
    # process: moved out of the collector's sight, a full collection no longer walks it. Without
    # this, each full collection under load paused the event loop for ~60 ms (bench/README.md).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        # Widget frames are small JSON; per-socket zlib state would cost ~45 KiB a socket.
        ws_per_message_deflate=False,
    )
    return 0


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from byoc.ops.doctor import run_doctor

    return asyncio.run(run_doctor(settings, pings=args.pings))


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    async def work() -> int:
        db = Database(settings.database_url)
        try:
            before = await current_version(db)
            applied = await upgrade(db)
        finally:
            await db.close()
        for migration in applied:
            print(f"applied migration {migration.version}: {migration.name}")
        print(f"schema at version {latest_version()} (was {before})")
        return 0

    return asyncio.run(work())


def cmd_db_status(settings: Settings, _args: argparse.Namespace) -> int:
    async def work() -> int:
        db = Database(settings.database_url)
        try:
            version = await current_version(db)
        finally:
            await db.close()
        print(f"schema version {version}, latest {latest_version()}")
        return 0 if version == latest_version() else 1

    return asyncio.run(work())


def cmd_clients_create(settings: Settings, args: argparse.Namespace) -> int:
    client_id, secret = new_client_credentials()

    async def work(db: Database) -> int:
        async with db.write() as conn:
            await repo.insert_client(conn, client_id, args.name, hash_secret(secret))
        return 0

    asyncio.run(_with_db(settings, work))
    if args.json:
        print(json.dumps({"client_id": client_id, "client_secret": secret, "name": args.name}))
    else:
        print(f"client_id:     {client_id}")
        print(f"client_secret: {secret}")
        print("The secret is shown once and stored only as a hash. Enter both in CXone's")
        print("Bring Your Own Channel integration (Client ID / Client Secret).")
    return 0


def cmd_clients_list(settings: Settings, _args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        async with db.read() as conn:
            clients = await repo.list_clients(conn)
        print(f"{'CLIENT ID':24} {'NAME':20} {'CREATED':20} REVOKED")
        for c in clients:
            print(f"{c.client_id:24} {c.name:20} {_when(c.created_at):20} {_when(c.revoked_at)}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_clients_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        async with db.write() as conn:
            revoked = await repo.revoke_client(conn, args.client_id)
        if not revoked:
            print(f"no active client {args.client_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.client_id}; its tokens stop working within seconds")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_tenants_add(settings: Settings, args: argparse.Namespace) -> int:
    if args.discover:
        endpoints = provisioning.discover_for_cli(settings, args.tenant_id, args.discovery_url)
        if endpoints is None:
            return 1
        args.api_url = args.api_url or endpoints.de_api_url
        args.token_url = args.token_url or endpoints.token_url
        print(f"discovered api url {args.api_url}, token url {args.token_url}")
    elif not args.api_url or not args.token_url:
        print("byoc: give --api-url and --token-url, or --discover", file=sys.stderr)
        return 2
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
        async with db.write() as conn:
            await repo.upsert_tenant(conn, tenant)
        print(f"tenant {tenant.id} saved (brand {tenant.brand_id})")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_tenants_list(settings: Settings, _args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        async with db.read() as conn:
            tenants = await repo.list_tenants(conn)
        print(f"{'ID':16} {'BRAND':8} {'TENANT':38} API")
        for t in tenants:
            print(f"{t.id:16} {t.brand_id:<8} {t.cxone_tenant_id:38} {t.api_url}")
        return 0

    return asyncio.run(_with_db(settings, work))


def _channel_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.adapter != "webchat":
        return {}
    raw: dict[str, Any] = json.loads(args.settings) if args.settings else {}
    if args.allowed_origin:
        raw["allowed_origins"] = args.allowed_origin
    parse_settings(raw)  # refuse what the widget could not use, before anything is stored
    return raw


def cmd_channels_add(settings: Settings, args: argparse.Namespace) -> int:
    secret = args.secret or secrets.token_urlsafe(32)
    try:
        channel_settings = _channel_settings(args)
    except (ValueError, InvalidInput) as exc:
        print(f"byoc: {exc}", file=sys.stderr)
        return 2

    async def work(db: Database) -> int:
        async with db.write() as conn:
            if await repo.get_tenant(conn, args.tenant) is None:
                print(f"no tenant {args.tenant!r}; add it with `byoc tenants add`", file=sys.stderr)
                return 1
            if await repo.get_channel(conn, args.id) is not None:
                print(f"channel {args.id!r} exists already", file=sys.stderr)
                return 1
            await repo.insert_channel(
                conn,
                Channel(
                    id=args.id,
                    tenant_id=args.tenant,
                    adapter=args.adapter,
                    name=args.name or args.id,
                    webhook_url=args.webhook_url,
                    secret=secret,
                    created_at=int(datetime.now(tz=UTC).timestamp() * 1000),
                    settings=channel_settings,
                ),
            )
        if args.json:
            print(json.dumps({"id": args.id, "secret": secret}))
        else:
            print(f"channel {args.id} mapped to tenant {args.tenant} ({args.adapter})")
            print(f"platform signing secret: {secret}")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        async with db.read() as conn:
            rows = await queue.list_rows(conn, state=args.state, limit=args.limit)
        if args.json:
            print(json.dumps([row.__dict__ for row in rows], default=str))
            return 0
        print(f"{'ID':>6} {'STATE':8} {'KIND':22} {'TRIES':>5} {'NEXT':20} LAST ERROR")
        for r in rows:
            error = (r.last_error or "")[:60]
            print(
                f"{r.id:>6} {r.state:8} {r.kind:22} {r.attempts:>5} "
                f"{_when(r.next_attempt_at):20} {error}"
            )
        print(f"{len(rows)} row(s)")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        print("name row ids or pass --all", file=sys.stderr)
        return 2

    async def work(db: Database) -> int:
        async with db.write() as conn:
            count = await queue.redrive(conn, None if args.all else args.ids)
        print(f"re-queued {count} dead row(s); a running server delivers them within its poll")
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_demo(_settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from byoc.demo import DemoPorts, run_demo

    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    ports = DemoPorts(
        middleware=args.port, emulator=args.emulator_port, platform=args.platform_port
    )
    try:
        return asyncio.run(run_demo(ports, Path(args.data_dir), once=args.once))
    except KeyboardInterrupt:
        return 0


def cmd_outbound_send(settings: Settings, args: argparse.Namespace) -> int:
    from byoc.conversations.lifecycle import LifecyclePolicy
    from byoc.conversations.service import ConversationService
    from byoc.errors import ByocError

    async def work(db: Database) -> int:
        service = ConversationService(db, LifecyclePolicy.from_settings(settings))
        author = {"firstName": args.author} if args.author else None
        try:
            delivered = await service.open_business_outbound(
                args.channel, args.customer, args.text, author
            )
        except ByocError as exc:
            print(f"byoc: {exc.detail}", file=sys.stderr)
            return 1
        thread = delivered.conversation.id
        print(f"thread {thread} opened for customer {delivered.customer.id}; message queued")
        deadline = asyncio.get_running_loop().time() + args.wait
        while args.wait > 0:
            async with db.read() as conn:
                rows = [
                    r
                    for r in await queue.list_rows(conn, state=None, limit=10_000)
                    if r.lane.endswith(thread) and r.kind in ("cxone.outbound", "platform.message")
                ]
            if not rows:
                print("delivered to CXone and to the customer's platform")
                return 0
            if any(r.state == "dead" for r in rows):
                print("delivery failed; see `byoc outbox list --state dead`", file=sys.stderr)
                return 1
            if asyncio.get_running_loop().time() > deadline:
                print(
                    "still queued: a running `byoc serve` delivers it "
                    f"({', '.join(sorted({r.kind for r in rows}))})"
                )
                return 0
            await asyncio.sleep(0.2)
        return 0

    return asyncio.run(_with_db(settings, work))


# --- parser ------------------------------------------------------------------------------------

Command = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byoc",
        description="Bring Your Own Channel middleware for NICE CXone. "
        "Settings come from BYOC_* environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"byoc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        func: Command,
        help_text: str,
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    serve = add(sub, "serve", cmd_serve, "run the HTTP server")
    serve.add_argument("--host", help="bind address (default: BYOC_HOST)")
    serve.add_argument("--port", type=int, help="port (default: BYOC_PORT)")

    doctor = add(sub, "doctor", cmd_doctor, "check the store and CXone; time calls to the DE API")
    doctor.add_argument("--pings", type=int, default=5, help="light DE calls to time (default: 5)")

    demo = add(sub, "demo", cmd_demo, "run the middleware, the CXone emulator and a demo platform")
    demo.add_argument("--port", type=int, default=8080, help="middleware port (default: 8080)")
    demo.add_argument("--emulator-port", type=int, default=8090, help="default: 8090")
    demo.add_argument("--platform-port", type=int, default=8070, help="default: 8070")
    demo.add_argument("--data-dir", default="var/demo", help="SQLite and state (default: var/demo)")
    demo.add_argument("--once", action="store_true", help="play one exchange, then stop")

    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    add(db, "upgrade", cmd_db_upgrade, "apply pending migrations")
    add(db, "status", cmd_db_status, "show the schema version (exit 1 when behind)")

    clients = sub.add_parser("clients", help="credentials CXone uses at the token endpoint")
    csub = clients.add_subparsers(dest="clients_command", required=True)
    create = add(csub, "create", cmd_clients_create, "create a client id and secret (shown once)")
    create.add_argument("--name", default="cxone", help="a label for the client (default: cxone)")
    create.add_argument("--json", action="store_true", help="print JSON")
    add(csub, "list", cmd_clients_list, "list clients")
    revoke = add(csub, "revoke", cmd_clients_revoke, "revoke a client and its tokens")
    revoke.add_argument("client_id")

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
    tadd.add_argument("--access-key-secret", required=True)
    tadd.add_argument("--client-id", required=True, help="registered CXone application id")
    tadd.add_argument("--client-secret", required=True)
    add(tsub, "list", cmd_tenants_list, "list tenants")
    tdisc = add(
        tsub, "discover", provisioning.cmd_tenants_discover, "show a tenant's regional endpoints"
    )
    tdisc.add_argument("--tenant-id", help="the CXone tenant GUID (default: BYOC_CXONE_TENANT_ID)")
    tdisc.add_argument("--discovery-url", help="default: BYOC_CXONE_DISCOVERY_URL")
    tdisc.add_argument("--json", action="store_true")

    channels = sub.add_parser("channels", help="channels and the platforms behind them")
    chsub = channels.add_subparsers(dest="channels_command", required=True)
    chadd = add(chsub, "add", cmd_channels_add, "map an existing CXone channel to a platform")
    chadd.add_argument("--id", required=True, help="the CXone channel id, e.g. chat_1234")
    chadd.add_argument("--tenant", default="default")
    chadd.add_argument("--adapter", default="webhook", choices=["webhook", "webchat"])
    chadd.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        help="webchat: an origin whose pages may open the widget (repeatable; '*' for any)",
    )
    chadd.add_argument(
        "--settings",
        help='webchat: JSON widget settings, e.g. \'{"title": "Help", "color": "#114477"}\'',
    )
    chadd.add_argument("--name")
    chadd.add_argument("--webhook-url", help="where agent messages are POSTed (webhook adapter)")
    chadd.add_argument("--secret", help="platform signing secret (default: generated)")
    chadd.add_argument("--json", action="store_true")
    chcreate = add(
        chsub, "create", provisioning.cmd_channels_create, "create a CXone channel and map it"
    )
    chcreate.add_argument("--name", required=True, help="the channel name agents see")
    chcreate.add_argument(
        "--integration-id", help="CXone's Integration ID (BYOC_CXONE_CHANNEL_INTEGRATION_ID)"
    )
    chcreate.add_argument("--tenant", default="default")
    chcreate.add_argument("--adapter", default="webhook", choices=["webhook", "webchat"])
    chcreate.add_argument("--webhook-url", help="where agent messages are POSTed (webhook)")
    chcreate.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        help="webchat: an origin whose pages may open the widget (repeatable; '*' for any)",
    )
    chcreate.add_argument("--settings", help="webchat: JSON widget settings")
    chcreate.add_argument("--owner-user-id", type=int, help="the DE user owning the channel")
    chcreate.add_argument("--id", help="channel id (default: generated chat_...)")
    chcreate.add_argument("--secret", help="platform signing secret (default: generated)")
    chcreate.add_argument("--json", action="store_true")
    chdel = add(
        chsub, "delete", provisioning.cmd_channels_delete, "delete a CXone channel and its mapping"
    )
    chdel.add_argument("channel_id")
    chdel.add_argument("--tenant", default="default", help="when the channel is not mapped here")
    chdel.add_argument("--json", action="store_true")
    chlist = add(chsub, "list", provisioning.cmd_channels_list, "list channels")
    chlist.add_argument("--remote", action="store_true", help="also what CXone lists")
    chlist.add_argument("--tenant", help="only this tenant (with --remote: default)")
    chlist.add_argument("--json", action="store_true")
    chshow = add(chsub, "show", provisioning.cmd_channels_show, "one channel, with its secret")
    chshow.add_argument("channel_id")
    chshow.add_argument("--json", action="store_true")

    fields = sub.add_parser("custom-fields", help="customer custom-field definitions in CXone")
    fsub = fields.add_subparsers(dest="custom_fields_command", required=True)
    fsync = add(fsub, "sync", provisioning.cmd_custom_fields_sync, "apply the declared definitions")
    fsync.add_argument("--file", help="JSON or TOML list (default: BYOC_CUSTOM_FIELDS_FILE)")
    fsync.add_argument("--tenant", default="default")
    fsync.add_argument("--json", action="store_true")

    setup = add(sub, "setup", provisioning.cmd_setup, "what to enter in CXone for this service")
    setup.add_argument("--json", action="store_true")

    outbound = sub.add_parser("outbound", help="business-initiated conversations")
    obsub = outbound.add_subparsers(dest="outbound_command", required=True)
    send = add(obsub, "send", cmd_outbound_send, "open a new thread with a customer (DE outbound)")
    send.add_argument("--channel", required=True, help="channel id")
    send.add_argument("--customer", required=True, help="the platform's user id, or cus_…")
    send.add_argument("--text", required=True)
    send.add_argument("--author", help="sender name shown to the customer")
    send.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for delivery (default 10; 0: no)"
    )

    outbox = sub.add_parser("outbox", help="deliveries waiting, retrying or dead-lettered")
    osub = outbox.add_subparsers(dest="outbox_command", required=True)
    olist = add(osub, "list", cmd_outbox_list, "list outbox rows")
    olist.add_argument("--state", choices=["pending", "dead"], help="only rows in this state")
    olist.add_argument("--limit", type=int, default=100)
    olist.add_argument("--json", action="store_true")
    oretry = add(osub, "retry", cmd_outbox_retry, "re-drive dead-lettered rows")
    oretry.add_argument("ids", nargs="*", type=int, help="row ids")
    oretry.add_argument("--all", action="store_true", help="every dead row")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except (ValidationError, PlaceholderSecretError) as exc:
        for line in settings_error_lines(exc):
            print(f"byoc: invalid setting: {line}", file=sys.stderr)
        return 2
    func: Command = args.func
    try:
        return func(settings, args)
    except StoreError as exc:
        print(f"byoc: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
