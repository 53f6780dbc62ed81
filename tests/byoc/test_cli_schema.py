"""Commands that open the store migrate only where start-up would (`BYOC_AUTO_MIGRATE`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from byoc.app import build_runtime
from byoc.store.migrations import SchemaBehind
from tests.support.cli import run_cli
from tests.support.emulator import Emulator
from tests.support.stack import middleware_settings


def byoc(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in-process (tests/byoc/test_cli.py runs it as a subprocess)."""
    database = {"BYOC_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    return run_cli(list(args), {**os.environ, **database, **env})


STORE_COMMANDS = [
    ("clients", "create", "--json"),
    ("clients", "list"),
    ("tenants", "list"),
    ("channels", "add", "--id", "chat_1", "--webhook-url", "https://p.example.invalid/hook"),
    ("channels", "list"),
    ("channels", "show", "chat_1"),
    ("outbox", "list"),
    ("outbound", "send", "--channel", "chat_1", "--customer", "u1", "--text", "hi"),
    ("setup",),
]


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
def test_a_behind_database_is_not_migrated_when_auto_migrate_is_off(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = byoc(tmp_path, *command, BYOC_AUTO_MIGRATE="false")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()  # one line, no traceback
    assert line.startswith("byoc: the database schema is at ")
    assert "run `byoc db upgrade`" in line
    status = byoc(tmp_path, "db", "status")
    assert status.returncode == 1  # still behind: nothing was migrated
    assert status.stdout.startswith("schema revision none,")


def test_commands_run_once_the_schema_is_current(tmp_path: Path) -> None:
    assert byoc(tmp_path, "db", "upgrade", BYOC_AUTO_MIGRATE="false").returncode == 0
    listed = byoc(tmp_path, "tenants", "list", BYOC_AUTO_MIGRATE="false")
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout


def test_auto_migrate_on_migrates_as_before(tmp_path: Path) -> None:
    listed = byoc(tmp_path, "clients", "list", BYOC_AUTO_MIGRATE="true")
    assert listed.returncode == 0, listed.stderr
    assert byoc(tmp_path, "db", "status").returncode == 0


def test_serve_on_a_behind_database_with_auto_migrate_off_stops_with_the_same_line(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Start-up and the commands share one rule (`migrations.bring_current`)."""
    database_url = f"sqlite:///{tmp_path / 'cli.db'}"  # the one `byoc` below reads
    settings = middleware_settings(
        tmp_path, emulator, auto_migrate=False, database_url=database_url
    )
    with pytest.raises(SchemaBehind, match=r"schema is at revision none, .*byoc db upgrade"):
        asyncio.run(build_runtime(settings))
    assert byoc(tmp_path, "db", "status").returncode == 1  # nothing was migrated
