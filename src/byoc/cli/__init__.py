"""The `byoc` command line: one module per noun, each adding its commands to the parser.

serve, doctor, demo, db, clients, tenants, channels, custom-fields, setup, outbound, outbox,
customers;
what they share (the parser helper, opening the store, CXone clients, output) is in `_common`.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import TYPE_CHECKING

from byoc import __version__
from byoc.cli._common import collector_paused

if TYPE_CHECKING:
    from byoc.cli._common import Command

# The command modules, in the order of `byoc --help`.
NOUNS = (
    "serve",
    "doctor",
    "demo",
    "db",
    "clients",
    "tenants",
    "channels",
    "custom_fields",
    "setup",
    "outbound",
    "outbox",
    "customers",
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command` alone: a command module is imported only
    when its commands may run, so that `byoc db upgrade` does not load what `byoc serve` needs
    (start-up time of every `byoc` process)."""
    parser = argparse.ArgumentParser(
        prog="byoc",
        description="Bring Your Own Channel middleware for NICE CXone. "
        "Settings come from BYOC_* environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"byoc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for noun in NOUNS:
        if command is None or noun.replace("_", "-") == command:
            importlib.import_module(f"byoc.cli.{noun}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if not word.startswith("-")), None)
    known = command if command is not None and command.replace("-", "_") in NOUNS else None
    with collector_paused():
        parser = build_parser(known)
        args = parser.parse_args(words)
        # Only now: `--help` and refused arguments end above without loading pydantic and the
        # store (start-up time of every `byoc` process).
        from pydantic import ValidationError

        from byoc.settings import PlaceholderSecretError, Settings, settings_error_lines
        from byoc.store import StoreError

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


def run_captured(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    """`byoc ARGV` in this process, with `env` as the whole environment while it runs (the
    settings come from there) and its output captured: the exit status, stdout and stderr.

    For tools and tests that run many commands, where a `byoc` process each would cost its
    imports every time. It swaps `os.environ` and the standard streams of the whole process:
    nothing else may read the one or write to the others meanwhile (threads included)."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse: --help, or the arguments refused
                code = exit_status(exc)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def exit_status(exc: SystemExit) -> int:
    """The status a process ending with `exc` would exit with; its message goes to stderr."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1
