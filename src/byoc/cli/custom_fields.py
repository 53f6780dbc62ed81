"""`byoc custom-fields`: customer custom-field definitions in CXone."""

from __future__ import annotations

import argparse
import json
import sys

from byoc.cli._common import Context, SubParsers, add, fail, progress, run
from byoc.provisioning.custom_fields import (
    CustomFieldsFileError,
    load_definitions,
    sync_custom_fields,
)
from byoc.settings import Settings


def cmd_custom_fields_sync(settings: Settings, args: argparse.Namespace) -> int:
    path = args.file or settings.custom_fields_file
    if not path:
        return fail("name the definitions file: --file or BYOC_CUSTOM_FIELDS_FILE", 2)
    try:
        definitions = load_definitions(path)
    except CustomFieldsFileError as exc:
        print(f"byoc: {exc.path} is not a valid custom-fields file:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2

    async def work(ctx: Context) -> int:
        client = await ctx.tenants.for_tenant(args.tenant)
        summary = await sync_custom_fields(client, definitions, progress=progress(args.json))
        if args.json:
            print(
                json.dumps(
                    {
                        "applied": summary.applied,
                        "failed": [{"ident": i, "error": e} for i, e in summary.failed],
                    }
                )
            )
        else:
            print(
                f"{len(summary.applied)} of {len(definitions)} custom field definition(s) "
                f"applied, {len(summary.failed)} failed"
            )
        return 0 if summary.ok else 1

    return run(settings, work)


def register(sub: SubParsers) -> None:
    fields = sub.add_parser("custom-fields", help="customer custom-field definitions in CXone")
    fsub = fields.add_subparsers(dest="custom_fields_command", required=True)
    fsync = add(fsub, "sync", cmd_custom_fields_sync, "apply the declared definitions")
    fsync.add_argument("--file", help="JSON or TOML list (default: BYOC_CUSTOM_FIELDS_FILE)")
    fsync.add_argument("--tenant", default="default")
    fsync.add_argument("--json", action="store_true")
