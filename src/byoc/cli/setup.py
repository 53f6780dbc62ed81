"""`byoc setup`: what to enter in CXone for this service."""

from __future__ import annotations

import argparse
import json
import sys

from byoc.cli._common import Context, SubParsers, add, run
from byoc.provisioning.setup import setup_document, setup_fields, setup_warnings
from byoc.settings import Settings
from byoc.store import clients


def cmd_setup(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: Context) -> int:
        listed = await ctx.db.run_read(clients.list_clients)
        active = [c.client_id for c in listed if c.revoked_at is None]
        if args.json:
            print(json.dumps(setup_document(settings, active)))
            return 0
        print("In CXone (ACD > Digital > Bring Your Own Channel), enter:\n")
        fields = setup_fields(settings, active)
        width = max(len(f.field) for f in fields) + 1
        for f in fields:
            print(f"  {f.field + ':':{width}} {f.value}")
            if f.note:
                print(f"  {'':{width}} ({f.note})")
        print("\nThen note the Integration ID CXone shows, set BYOC_CXONE_CHANNEL_INTEGRATION_ID")
        print("to it, and add channels with 'Add channel' in CXone or `byoc channels create`.")
        for warning in setup_warnings(settings):
            print(f"warning: {warning}", file=sys.stderr)
        return 0

    return run(settings, work)


def register(sub: SubParsers) -> None:
    setup = add(sub, "setup", cmd_setup, "what to enter in CXone for this service")
    setup.add_argument("--json", action="store_true")
