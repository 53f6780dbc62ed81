"""`byoc customers`: a customer's right to erasure.

`byoc customers erase --channel ID --customer PLATFORM_USER_ID` deletes everything this
service holds about that platform user of that channel (`byoc.conversations.erasure`), prints
what went, and writes one audit line to the JSON log (stderr, so stdout stays the report):

    {"ts": "…", "level": "info", "logger": "byoc.audit", "message": "customer erased",
     "event": "customer_erasure", "channel_id": "…", "customer_ref": "…", "found": true,
     "conversations": 2, "messages": 14, "attachments": 1, "outbox_rows": 0}

The line names the customer by `customer_ref`, a keyed hash of the platform user id under the
channel's secret (`byoc.channels.keys.customer_reference`), never by the id itself, and holds
no message content. It is written whatever `BYOC_LOG_LEVEL` says. Erasing again finds nothing,
says so, exits 0 and writes an audit line with `"found": false`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from byoc.channels.keys import customer_reference
from byoc.cli._common import SubParsers, add, fail, with_db
from byoc.conversations.erasure import Erasure, erase
from byoc.errors import ChannelNotFound
from byoc.ops.logging import configure, unconfigure
from byoc.settings import Settings
from byoc.store import Database

audit = logging.getLogger("byoc.audit")


def _audit(erasure: Erasure, reference: str) -> None:
    audit.info(
        "customer erased" if erasure.found else "customer erasure: nothing held",
        extra={
            "event": "customer_erasure",
            "channel_id": erasure.channel.id,
            "customer_ref": reference,
            "found": erasure.found,
            "conversations": erasure.conversations,
            "messages": erasure.messages,
            "attachments": erasure.attachments,
            "outbox_rows": erasure.outbox_rows,
        },
    )


def _report(erasure: Erasure, reference: str, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "channel": erasure.channel.id,
                    "customer_ref": reference,
                    "found": erasure.found,
                    "customers": int(erasure.found),
                    "conversations": erasure.conversations,
                    "messages": erasure.messages,
                    "attachments": erasure.attachments,
                    "outbox_rows": erasure.outbox_rows,
                }
            )
        )
    elif not erasure.found:
        print(
            f"nothing to erase: channel {erasure.channel.id} holds no such customer"
            f" (audit reference {reference})"
        )
    else:
        print(
            f"erased customer {reference} (audit reference) of channel {erasure.channel.id}:"
            f" the profile, {erasure.conversations} conversation(s), {erasure.messages}"
            f" message(s), {erasure.attachments} attachment(s), {erasure.outbox_rows} queued"
            " delivery(ies)"
        )
        print("CXone keeps its own copy of the conversations: erase them there as well.")


def cmd_customers_erase(settings: Settings, args: argparse.Namespace) -> int:
    handler = configure(settings, stream=sys.stderr)
    # The audit line is written whatever the log level.
    audit.setLevel(logging.INFO)

    async def work(db: Database) -> int:
        try:
            erasure = await erase(db, args.channel, args.customer)
        except ChannelNotFound as exc:
            return fail(f"{exc.detail}: nothing erased")
        reference = customer_reference(erasure.channel.secret, args.customer)
        _audit(erasure, reference)
        _report(erasure, reference, args.json)
        return 0

    try:
        return asyncio.run(with_db(settings, work))
    finally:
        unconfigure(handler)


def register(sub: SubParsers) -> None:
    customers = sub.add_parser("customers", help="customers' personal data (right to erasure)")
    csub = customers.add_subparsers(dest="customers_command", required=True)
    erase = add(
        csub,
        "erase",
        cmd_customers_erase,
        "delete a customer's messages, attachments, conversations and profile on one channel",
    )
    erase.add_argument("--channel", required=True, help="channel id")
    erase.add_argument("--customer", required=True, help="the platform's user id")
    erase.add_argument("--json", action="store_true", help="print JSON")
