"""The `byoc` command line with BYOC_* variables: each command's own `main()`, run in this
process with its output captured (`tests.support.cli.run_cli`); the entry point and the demo
run as a user runs them, in a subprocess."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from byoc.settings import Settings
from byoc.store import Database, tenants
from byoc.store.records import Tenant
from byoc.tenancy import DEFAULT_TENANT_ID
from tests.support.cli import run_cli
from tests.support.servers import free_port


def byoc(
    tmp_path: Path, *args: str, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "BYOC_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        **env,
    }
    result = run_cli(list(args), environment)
    if check and result.returncode != 0:
        raise AssertionError(f"byoc {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def byoc_process(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m byoc.cli ARGS` in a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "byoc.cli", *args],
        env={**os.environ, "BYOC_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    assert byoc(tmp_path, "db", "current").stdout.strip() == "none"
    assert byoc(tmp_path, "db", "status", check=False).returncode == 1
    first = byoc_process(tmp_path, "db", "upgrade")  # the module entry point, end to end
    assert "applying revision 0001: Baseline" in first.stdout  # a line per revision
    head = byoc(tmp_path, "db", "current").stdout.strip()
    assert first.stdout.rstrip().endswith(f"schema at revision {head} (was empty)")
    second = byoc(tmp_path, "db", "upgrade")
    assert second.stdout.strip() == f"schema at revision {head} (was {head})"
    assert byoc(tmp_path, "db", "status").returncode == 0


def test_clients_create_list_revoke_rotate(tmp_path: Path) -> None:
    created = json.loads(byoc(tmp_path, "clients", "create", "--name", "prod", "--json").stdout)
    assert created["client_id"].startswith("byoc_")
    assert len(created["client_secret"]) >= 40
    other = json.loads(byoc(tmp_path, "clients", "create", "--json").stdout)
    listed = byoc(tmp_path, "clients", "list").stdout
    assert created["client_id"] in listed
    assert other["client_id"] in listed
    assert created["client_secret"] not in listed  # shown once, stored hashed
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("cli.db*"))
    assert created["client_secret"].encode() not in db_bytes
    revoked = byoc(tmp_path, "clients", "revoke", created["client_id"])
    assert "revoked" in revoked.stdout
    again = byoc(tmp_path, "clients", "revoke", created["client_id"], check=False)
    assert again.returncode == 1
    rotated = json.loads(byoc(tmp_path, "clients", "rotate", other["client_id"], "--json").stdout)
    assert rotated["client_id"] == other["client_id"]
    assert rotated["client_secret"] != other["client_secret"]
    gone = byoc(tmp_path, "clients", "rotate", created["client_id"], check=False)
    assert gone.returncode == 1  # a revoked client gets no new secret


def test_a_tenants_secrets_may_come_from_the_environment(tmp_path: Path) -> None:
    """Not on the command line, where `ps` and the shell's history show them."""
    arguments = [
        "tenants", "add", "--id", "env", "--brand-id", "3003", "--tenant-id", "guid",
        "--business-unit-id", "7", "--api-url", "https://api-de-eu1.example.invalid/dfo/3.0",
        "--token-url", "https://eu1.example.invalid/auth/token",
        "--access-key-id", "k", "--client-id", "c",
    ]  # fmt: skip
    missing = byoc(tmp_path, *arguments, check=False)
    assert missing.returncode == 2
    assert "BYOC_TENANT_ACCESS_KEY_SECRET" in missing.stderr
    assert "BYOC_TENANT_CLIENT_SECRET" in missing.stderr
    byoc(
        tmp_path,
        *arguments,
        BYOC_TENANT_ACCESS_KEY_SECRET="from-env-secret",
        BYOC_TENANT_CLIENT_SECRET="from-env-client-secret",
    )

    async def stored() -> Tenant | None:
        db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
        try:
            return await db.run_read(tenants.get_tenant, "env")
        finally:
            await db.close()

    tenant = asyncio.run(stored())
    assert tenant is not None
    assert (tenant.access_key_secret, tenant.client_secret) == (
        "from-env-secret",
        "from-env-client-secret",
    )


def test_tenants_and_channels(tmp_path: Path) -> None:
    byoc(
        tmp_path, "tenants", "add", "--id", "eu", "--brand-id", "2002",
        "--tenant-id", "eu-tenant-guid", "--business-unit-id", "77",
        "--api-url", "https://api-de-eu1.example.invalid/dfo/3.0",
        "--token-url", "https://eu1.example.invalid/auth/token",
        "--access-key-id", "k", "--access-key-secret", "s",
        "--client-id", "c", "--client-secret", "cs",
    )  # fmt: skip
    tenants = byoc(tmp_path, "tenants", "list").stdout
    assert "eu" in tenants
    assert "default" in tenants
    assert "2002" in tenants
    added = json.loads(
        byoc(
            tmp_path, "channels", "add", "--id", "chat_eu", "--tenant", "eu",
            "--webhook-url", "https://platform.example.invalid/hook", "--json",
        ).stdout
    )  # fmt: skip
    assert added["id"] == "chat_eu"
    assert len(added["secret"]) > 20
    assert "chat_eu" in byoc(tmp_path, "channels", "list").stdout
    unknown = byoc(
        tmp_path, "channels", "add", "--id", "chat_x", "--tenant", "nope",
        "--webhook-url", "https://platform.example.invalid/hook", check=False,
    )  # fmt: skip
    assert unknown.returncode == 1
    assert "no tenant" in unknown.stderr


def test_a_command_leaves_the_servers_default_tenant_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server writes the default tenant from its environment; an operator's command run
    without those settings (or with others) must not rewrite it: the server's next CXone call
    would go where the command's environment points."""
    api_url = "https://api-de-na1.example.test/incontactapi"
    byoc(tmp_path, "clients", "create", "--name", "first", BYOC_CXONE_API_URL=api_url)
    assert stored_default_tenant(tmp_path).api_url == api_url  # added: there was none
    result = byoc(tmp_path, "clients", "list", BYOC_CXONE_API_URL="http://127.0.0.1:8090")
    assert "first" in result.stdout
    assert stored_default_tenant(tmp_path).api_url == api_url
    assert "the stored default tenant differs" in caplog.text  # on stderr without pytest
    caplog.clear()
    byoc(tmp_path, "clients", "list", BYOC_CXONE_API_URL=api_url)
    assert "default tenant" not in caplog.text


def stored_default_tenant(tmp_path: Path) -> Tenant:
    async def read() -> Tenant | None:
        db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
        try:
            return await db.run_read(tenants.get_tenant, DEFAULT_TENANT_ID)
        finally:
            await db.close()

    tenant = asyncio.run(read())
    assert tenant is not None
    return tenant


def test_outbox_retry_needs_ids_or_all(tmp_path: Path) -> None:
    result = byoc(tmp_path, "outbox", "retry", check=False)
    assert result.returncode == 2
    assert "0 row(s)" in byoc(tmp_path, "outbox", "list").stdout


def test_placeholder_secrets_are_refused_outside_development(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="placeholder secrets are refused"):
        Settings(environment="production")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(environment="production", token_signing_key="too-short")
    Settings(environment="development")
    result = byoc(tmp_path, "clients", "list", check=False, BYOC_ENVIRONMENT="production")
    assert result.returncode == 2
    assert "BYOC_TOKEN_SIGNING_KEY" in result.stderr


def test_demo_plays_a_round_trip(tmp_path: Path) -> None:
    result = byoc_process(
        tmp_path, "demo", "--once", "--data-dir", str(tmp_path / "demo"),
        "--port", str(free_port()), "--emulator-port", str(free_port()),
        "--platform-port", str(free_port()),
    )  # fmt: skip
    assert "the round trip works" in result.stdout, result.stdout + result.stderr
    assert "the widget shows Sam" in result.stdout


def test_webchat_channel_settings_are_checked(tmp_path: Path) -> None:
    added = byoc(
        tmp_path, "channels", "add", "--id", "chat_web", "--adapter", "webchat",
        "--allowed-origin", "https://watering-hole.example",
        "--settings", '{"title": "Help", "color": "#114477"}',
    )  # fmt: skip
    assert "chat_web" in added.stdout
    bad = byoc(
        tmp_path, "channels", "add", "--id", "chat_bad", "--adapter", "webchat",
        "--settings", '{"color": "red"}', check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "color" in bad.stderr
    assert "chat_bad" not in byoc(tmp_path, "channels", "list").stdout


def test_collector_paused_for_a_server_freezes_and_sets_the_server_thresholds() -> None:
    """`collector_paused(then_freeze=True)`, as `byoc serve` builds its app: the collector is
    off inside the block, what was built is frozen, and the server's thresholds apply."""
    from byoc.cli._common import SERVER_GC_THRESHOLDS, collector_paused

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        with collector_paused(then_freeze=True):
            assert not gc.isenabled()
            built = [[n] for n in range(100)]  # lists: tracked by the collector
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(built)
        assert gc.get_threshold() == SERVER_GC_THRESHOLDS
        assert SERVER_GC_THRESHOLDS[0] > before[0]
    finally:  # (what was frozen stays frozen, as the suite's own start-up freeze does)
        gc.set_threshold(*before)


def _out_of_reach() -> str:
    """A PostgreSQL URL whose port nothing listens on."""
    return f"postgresql://byoc@127.0.0.1:{free_port()}/byoc"


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"], ["channels", "list"]])
def test_a_database_out_of_reach_is_said_in_one_line(tmp_path: Path, command: list[str]) -> None:
    result = byoc(tmp_path, *command, check=False, BYOC_DATABASE_URL=_out_of_reach())
    assert result.returncode == 1
    assert result.stderr.startswith("byoc: database unreachable: ConnectionRefusedError")
    assert len(result.stderr.splitlines()) == 1


def test_serve_with_a_database_out_of_reach_starts_nothing_and_says_why(tmp_path: Path) -> None:
    result = byoc(
        tmp_path, "serve", "--workers", "2", check=False, BYOC_DATABASE_URL=_out_of_reach()
    )
    assert result.returncode == 1
    assert result.stderr.startswith("byoc serve: database unreachable: ConnectionRefusedError")
    assert len(result.stderr.splitlines()) == 1
