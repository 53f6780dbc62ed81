"""`byoc outbox`: deliveries waiting, retrying or dead-lettered."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from byoc.cli._common import SubParsers, add, when, with_db
from byoc.outbox import kinds
from byoc.outbox import rows as outbox_rows
from byoc.settings import Settings
from byoc.store import Database


def cmd_outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        rows = await db.run_read(
            outbox_rows.list_rows, state=args.state, kind=args.kind, limit=args.limit
        )
        if args.json:
            print(json.dumps([row.__dict__ for row in rows], default=str))
            return 0
        print(f"{'ID':>6} {'STATE':8} {'KIND':22} {'TRIES':>5} {'NEXT':20} LAST ERROR")
        for r in rows:
            error = (r.last_error or "")[:60]
            print(
                f"{r.id:>6} {r.state:8} {r.kind:22} {r.attempts:>5} "
                f"{when(r.next_attempt_at):20} {error}"
            )
        print(f"{len(rows)} row(s)")
        return 0

    return asyncio.run(with_db(settings, work))


def cmd_outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    if not args.ids and not args.all and not args.kind:
        print("name row ids or pass --all or --kind", file=sys.stderr)
        return 2

    async def work(db: Database) -> int:
        ids = None if args.all else (args.ids or None)  # none named: every dead row (of --kind)
        count = await db.run_write(outbox_rows.redrive, ids, kind=args.kind)
        print(f"re-queued {count} dead row(s); a running server delivers them within its poll")
        return 0

    return asyncio.run(with_db(settings, work))


def register(sub: SubParsers) -> None:
    outbox = sub.add_parser("outbox", help="deliveries waiting, retrying or dead-lettered")
    osub = outbox.add_subparsers(dest="outbox_command", required=True)
    olist = add(osub, "list", cmd_outbox_list, "list outbox rows")
    olist.add_argument("--state", choices=["pending", "dead"], help="only rows in this state")
    olist.add_argument("--kind", choices=kinds.NAMES, help="only rows of this kind")
    olist.add_argument("--limit", type=int, default=100)
    olist.add_argument("--json", action="store_true")
    oretry = add(osub, "retry", cmd_outbox_retry, "re-drive dead-lettered rows")
    oretry.add_argument("ids", nargs="*", type=int, help="row ids")
    oretry.add_argument("--all", action="store_true", help="every dead row")
    oretry.add_argument("--kind", choices=kinds.NAMES, help="only dead rows of this kind")
