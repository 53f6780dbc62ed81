"""`byoc channels`: channels and the platforms behind them, here and in CXone."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

from byoc.channels import ADAPTERS, WEBCHAT, WEBHOOK
from byoc.channels.webchat.config import parse_settings
from byoc.cli._common import (
    Context,
    SubParsers,
    add,
    confirmed,
    fail,
    progress,
    run,
    with_db,
)
from byoc.errors import InvalidInput
from byoc.outbound import OutboundPolicy
from byoc.settings import Settings
from byoc.store import Connection, Database, channels, tenants
from byoc.store.records import Channel


def _settings_option(text: str | None) -> dict[str, Any]:
    """`--settings` as a JSON object; InvalidInput names the option."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"--settings is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput("--settings must be a JSON object")
    return raw


def _channel_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.adapter != WEBCHAT:
        return {}
    raw = _settings_option(args.settings)
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
    if args.adapter == WEBHOOK:
        if not args.webhook_url:
            return fail("--webhook-url is required for the webhook adapter", 2)
        problem = OutboundPolicy.of(settings).url_problem(args.webhook_url)
        if problem is not None:
            return fail(f"--webhook-url {args.webhook_url}: {problem}", 2)
    elif args.webhook_url:
        return fail("--webhook-url is only for the webhook adapter", 2)

    def add_channel(conn: Connection) -> str | None:
        if tenants.get_tenant(conn, args.tenant) is None:
            return f"no tenant {args.tenant!r}; add it with `byoc tenants add`"
        if channels.get_channel(conn, args.id) is not None:
            return f"channel {args.id!r} exists already"
        channels.insert_channel(
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
        return None

    async def work(db: Database) -> int:
        problem = await db.run_write(add_channel)
        if problem is not None:
            print(problem, file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps({"id": args.id, "secret": secret}))
        else:
            print(f"channel {args.id} mapped to tenant {args.tenant} ({args.adapter})")
            print(f"platform signing secret: {secret}")
        return 0

    return asyncio.run(with_db(settings, work))


# The commands that call CXone load the provisioning code (and the CXone client, aiohttp) when
# they run: `channels add` does without them (start-up time).


def cmd_channels_create(settings: Settings, args: argparse.Namespace) -> int:
    from byoc.provisioning.channels import NewChannel, ProvisioningError, create_channel

    integration_id = args.integration_id or settings.cxone_channel_integration_id
    if not integration_id:
        return fail(
            "name the channel integration: --integration-id or "
            "BYOC_CXONE_CHANNEL_INTEGRATION_ID (the Integration ID CXone shows)",
            2,
        )
    try:
        channel_settings = _settings_option(args.settings)
    except InvalidInput as exc:
        return fail(exc.detail, 2)
    if args.allowed_origin:
        channel_settings["allowed_origins"] = args.allowed_origin
    request = NewChannel(
        settings=channel_settings,
        name=args.name,
        integration_id=integration_id,
        tenant_id=args.tenant,
        adapter=args.adapter,
        webhook_url=args.webhook_url,
        owner_user_id=args.owner_user_id,
        id=args.id,
        secret=args.secret,
    )

    async def work(ctx: Context) -> int:
        client = await ctx.tenants.for_tenant(args.tenant)
        try:
            created = await create_channel(
                ctx.db,
                client,
                request,
                progress=progress(args.json),
                policy=OutboundPolicy.of(settings),
            )
        except ProvisioningError as exc:
            return fail(f"{exc.detail} (failed at: {exc.step})")
        channel = created.channel
        if args.json:
            print(
                json.dumps(
                    {
                        "id": channel.id,
                        "tenant": channel.tenant_id,
                        "adapter": channel.adapter,
                        "name": channel.name,
                        "webhookUrl": channel.webhook_url,
                        "secret": channel.secret,
                        "channelIntegrationId": integration_id,
                        "ownerUserId": args.owner_user_id,
                    }
                )
            )
        else:
            print(f"channel {channel.id} created in CXone and mapped to tenant {channel.tenant_id}")
            print(f"platform signing secret: {channel.secret}")
        return 0

    return run(settings, work)


def cmd_channels_delete(settings: Settings, args: argparse.Namespace) -> int:
    from byoc.provisioning.channels import ProvisioningError, delete_channel

    async def work(ctx: Context) -> int:
        mapped = await ctx.db.run_read(channels.get_channel, args.channel_id)
        tenant_id = mapped.tenant_id if mapped is not None else args.tenant
        question = f"Delete channel {args.channel_id} in CXone (tenant {tenant_id}) and here?"
        if not confirmed(question, yes=args.yes):
            return fail("nothing deleted")
        client = await ctx.tenants.for_tenant(tenant_id)
        try:
            result = await delete_channel(
                ctx.db, client, args.channel_id, progress=progress(args.json)
            )
        except ProvisioningError as exc:
            return fail(exc.detail)
        if args.json:
            print(
                json.dumps(
                    {
                        "id": result.channel_id,
                        "remoteDeleted": result.remote_deleted,
                        "localDeleted": result.local_deleted,
                    }
                )
            )
        else:
            print(f"channel {result.channel_id} deleted")
        return 0

    return run(settings, work)


def cmd_channels_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: Context) -> int:
        if not args.remote:
            mapped = await ctx.db.run_read(channels.list_channels)
            if args.tenant:
                mapped = [c for c in mapped if c.tenant_id == args.tenant]
            if args.json:
                print(
                    json.dumps(
                        [
                            {
                                "id": c.id,
                                "tenant": c.tenant_id,
                                "adapter": c.adapter,
                                "name": c.name,
                                "webhookUrl": c.webhook_url,
                            }
                            for c in mapped
                        ]
                    )
                )
                return 0
            print(f"{'ID':32} {'TENANT':12} {'ADAPTER':8} WEBHOOK")
            for c in mapped:
                print(f"{c.id:32} {c.tenant_id:12} {c.adapter:8} {c.webhook_url or '-'}")
            return 0

        from byoc.provisioning.channels import channel_overview

        tenant_id = args.tenant or "default"
        client = await ctx.tenants.for_tenant(tenant_id)
        rows = await channel_overview(ctx.db, client, tenant_id)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": row.id,
                            "tenant": tenant_id,
                            "local": row.local is not None,
                            "remote": row.remote is not None,
                            "adapter": row.local.adapter if row.local else None,
                            "name": (row.local.name if row.local else None)
                            or (row.remote.name if row.remote else None),
                            "channelIntegrationId": row.remote.channel_integration_id
                            if row.remote
                            else None,
                        }
                        for row in rows
                    ]
                )
            )
            return 0
        print(f"{'ID':32} {'ADAPTER':8} {'LOCAL':6} {'CXONE':6} NAME")
        for row in rows:
            name = (row.local.name if row.local else None) or (
                row.remote.name if row.remote else ""
            )
            print(
                f"{row.id:32} {(row.local.adapter if row.local else '-'):8} "
                f"{'yes' if row.local else 'no':6} {'yes' if row.remote else 'no':6} {name}"
            )
        return 0

    return run(settings, work)


def cmd_channels_show(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: Context) -> int:
        channel = await ctx.db.run_read(channels.get_channel, args.channel_id)
        if channel is None:
            return fail(f"no channel {args.channel_id!r}")
        document = {
            "id": channel.id,
            "tenant": channel.tenant_id,
            "adapter": channel.adapter,
            "name": channel.name,
            "webhookUrl": channel.webhook_url,
            "secret": channel.secret,
        }
        if args.json:
            print(json.dumps(document))
        else:
            for key, value in document.items():
                print(f"{key + ':':12} {value if value is not None else '-'}")
        return 0

    return run(settings, work)


def register(sub: SubParsers) -> None:
    channels = sub.add_parser("channels", help="channels and the platforms behind them")
    chsub = channels.add_subparsers(dest="channels_command", required=True)
    chadd = add(chsub, "add", cmd_channels_add, "map an existing CXone channel to a platform")
    chadd.add_argument("--id", required=True, help="the CXone channel id, e.g. chat_1234")
    chadd.add_argument("--tenant", default="default")
    chadd.add_argument("--adapter", default=WEBHOOK, choices=ADAPTERS)
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
    chcreate = add(chsub, "create", cmd_channels_create, "create a CXone channel and map it")
    chcreate.add_argument("--name", required=True, help="the channel name agents see")
    chcreate.add_argument(
        "--integration-id", help="CXone's Integration ID (BYOC_CXONE_CHANNEL_INTEGRATION_ID)"
    )
    chcreate.add_argument("--tenant", default="default")
    chcreate.add_argument("--adapter", default=WEBHOOK, choices=ADAPTERS)
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
    chdel = add(chsub, "delete", cmd_channels_delete, "delete a CXone channel and its mapping")
    chdel.add_argument("channel_id")
    chdel.add_argument("--tenant", default="default", help="when the channel is not mapped here")
    chdel.add_argument("--yes", action="store_true", help="do not ask, even on a terminal")
    chdel.add_argument("--json", action="store_true")
    chlist = add(chsub, "list", cmd_channels_list, "list channels")
    chlist.add_argument("--remote", action="store_true", help="also what CXone lists")
    chlist.add_argument("--tenant", help="only this tenant (with --remote: default)")
    chlist.add_argument("--json", action="store_true")
    chshow = add(chsub, "show", cmd_channels_show, "one channel, with its secret")
    chshow.add_argument("channel_id")
    chshow.add_argument("--json", action="store_true")
