"""The `byoc` command line: one module per noun, each adding its commands to the parser.

serve, doctor, demo, db, clients, tenants, channels, custom-fields, setup, outbound, outbox,
customers;
what they share (the parser helper, opening the store, CXone clients, output) is in `_common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from byoc import __version__
from byoc.cli import (
    channels,
    clients,
    custom_fields,
    customers,
    db,
    demo,
    doctor,
    outbound,
    outbox,
    serve,
    setup,
    tenants,
)
from byoc.cli._common import Command
from byoc.settings import PlaceholderSecretError, Settings, settings_error_lines
from byoc.store import StoreError

# The order of `byoc --help`.
NOUNS = (
    serve,
    doctor,
    demo,
    db,
    clients,
    tenants,
    channels,
    custom_fields,
    setup,
    outbound,
    outbox,
    customers,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byoc",
        description="Bring Your Own Channel middleware for NICE CXone. "
        "Settings come from BYOC_* environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"byoc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for noun in NOUNS:
        noun.register(sub)
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
