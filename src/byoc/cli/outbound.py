"""`byoc outbound`: business-initiated conversations."""

from __future__ import annotations

import argparse
import asyncio
import sys

from byoc.cli._common import SubParsers, add, with_db
from byoc.outbox import kinds
from byoc.outbox import rows as outbox_rows
from byoc.settings import Settings
from byoc.store import Database


def cmd_outbound_send(settings: Settings, args: argparse.Namespace) -> int:
    from byoc.conversations.policy import LifecyclePolicy
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
            rows = [
                r
                for r in await db.run_read(outbox_rows.list_rows, state=None, limit=10_000)
                if r.lane.endswith(thread)
                and r.kind in (kinds.BusinessOutbound.KIND, kinds.AgentMessage.KIND)
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

    return asyncio.run(with_db(settings, work))


def register(sub: SubParsers) -> None:
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
