"""`byoc channels create/delete/list` against the emulator, and the compensation of a failed
mapping (in-process, over loopback HTTP)."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from byoc.cxone import DeClient, TokenManager
from byoc.errors import ByocError
from byoc.http import HttpClient
from byoc.provisioning.channels import (
    ChannelIdTaken,
    NewChannel,
    ProvisioningError,
    create_channel,
)
from byoc.store import Database, channels, tenants
from byoc.store.migrations import upgrade
from byoc.store.records import Channel
from byoc.tenancy import default_tenant
from tests.support.cli import INTEGRATION_ID, Cli, register_integration
from tests.support.emulator import Emulator
from tests.support.stack import middleware_settings


def emulator_channels(emulator: Emulator) -> dict[str, dict[str, Any]]:
    data = emulator.admin.get("/emulator/channels").json()["data"]
    return {c["id"]: c for c in data}


def local_channels(cli: Cli) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(cli("channels", "list", "--json").stdout)
    return listed


def test_create_makes_the_de_channel_and_the_mapping(cli: Cli) -> None:
    result = cli(
        "channels", "create", "--name", "The Shop", "--integration-id", INTEGRATION_ID,
        "--webhook-url", "https://platform.example.invalid/hook", "--owner-user-id", "4242",
        "--json",
    )  # fmt: skip
    created = json.loads(result.stdout)
    channel_id = created["id"]
    assert channel_id.startswith("chat_")
    assert created["ownerUserId"] == 4242
    for step in ("checking channel id", "creating DE channel", "storing the mapping", "ready"):
        assert step in result.stderr

    posts = cli.emulator.requests("/channels", method="POST")
    assert [p["status"] for p in posts] == [200]
    body = posts[0]["requestBody"]
    assert body["id"] == channel_id
    assert body["idOnExternalPlatform"] == channel_id
    assert body["channelIntegrationId"] == INTEGRATION_ID
    assert body["ownerUserId"] == 4242
    assert body["realExternalPlatformId"] == "custom"
    assert body["name"] == "The Shop"
    assert body["isPrivate"] is True
    assert body["hasTreeStructure"] is False
    assert body["hasOutboundFlow"] is True
    assert body["hasManualOutboundFlow"] is True
    assert body["hasAbilityToSendFiles"] is True
    assert body["isLiveChat"] is False
    assert channel_id in emulator_channels(cli.emulator)

    shown = json.loads(cli("channels", "show", channel_id, "--json").stdout)
    assert shown["secret"] == created["secret"]
    assert shown["webhookUrl"] == "https://platform.example.invalid/hook"
    assert shown["tenant"] == "default"
    assert [c["id"] for c in local_channels(cli)] == [channel_id]


def test_text_output_and_the_integration_from_the_settings(cli: Cli) -> None:
    result = cli(
        "channels", "create", "--name", "Web chat", "--adapter", "webchat", "--id", "chat_web",
        "--allowed-origin", "https://shop.example",
        BYOC_CXONE_CHANNEL_INTEGRATION_ID=INTEGRATION_ID,
    )  # fmt: skip
    assert "-> creating DE channel chat_web (integration byoc-int-1)" in result.stdout
    assert "channel chat_web created in CXone" in result.stdout
    assert "platform signing secret:" in result.stdout
    remote = emulator_channels(cli.emulator)["chat_web"]
    assert remote["isLiveChat"] is True
    assert remote["channelIntegrationId"] == INTEGRATION_ID
    assert "ownerUserId" not in cli.emulator.requests("/channels", "POST")[0]["requestBody"]

    async def stored() -> Channel | None:
        db = Database(cli.database_url)
        try:
            return await db.run_read(channels.get_channel, "chat_web")
        finally:
            await db.close()

    channel = asyncio.run(stored())
    assert channel is not None
    assert channel.adapter == "webchat"
    assert channel.settings == {"allowed_origins": ["https://shop.example"]}


def test_a_refused_create_stores_nothing(cli: Cli) -> None:
    result = cli(
        "channels", "create", "--name", "Nope", "--integration-id", "no-such-integration",
        "--webhook-url", "https://platform.example.invalid/hook", check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "CXone refused the channel" in result.stderr
    assert "nothing was stored" in result.stderr
    assert local_channels(cli) == []
    assert emulator_channels(cli.emulator) == {}


def test_an_unconfirmed_create_is_undone_and_stores_nothing(cli: Cli) -> None:
    faults = {"rules": [{"match": "POST /channels", "errorRate": 1, "errorStatus": 503}]}
    cli.emulator.admin.put("/emulator/faults", json=faults).raise_for_status()
    result = cli(
        "channels", "create", "--name", "Down", "--integration-id", INTEGRATION_ID,
        "--webhook-url", "https://platform.example.invalid/hook", "--id", "chat_down",
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "CXone did not confirm the channel" in result.stderr
    # The 503 may have hidden a success, so the channel is deleted to be sure.
    assert cli.emulator.requests("/channels/chat_down", method="DELETE")
    assert local_channels(cli) == []
    assert emulator_channels(cli.emulator) == {}


def test_input_errors_send_nothing(cli: Cli) -> None:
    no_url = cli(
        "channels", "create", "--name", "X", "--integration-id", INTEGRATION_ID, check=False
    )
    assert no_url.returncode == 2
    assert "webhook_url: is required" in no_url.stderr
    no_integration = cli(
        "channels", "create", "--name", "X", "--webhook-url", "https://p.example.invalid/h",
        check=False,
    )  # fmt: skip
    assert no_integration.returncode == 2
    assert "BYOC_CXONE_CHANNEL_INTEGRATION_ID" in no_integration.stderr
    bad_origin_settings = cli(
        "channels", "create", "--name", "X", "--integration-id", INTEGRATION_ID,
        "--adapter", "webchat", "--settings", '{"color": "red"}', check=False,
    )  # fmt: skip
    assert bad_origin_settings.returncode == 2
    assert "settings" in bad_origin_settings.stderr
    assert cli.emulator.requests("/channels", method="POST") == []


def test_an_id_that_exists_in_cxone_is_not_overwritten(cli: Cli) -> None:
    with cli.emulator.api_client() as api:
        api.post(
            "/channels",
            json={
                "id": "chat_theirs", "idOnExternalPlatform": "theirs",
                "channelIntegrationId": INTEGRATION_ID, "realExternalPlatformId": "custom",
                "name": "Someone else's", "isPrivate": True, "hasTreeStructure": False,
            },
        ).raise_for_status()  # fmt: skip
    result = cli(
        "channels", "create", "--name", "Mine", "--integration-id", INTEGRATION_ID,
        "--webhook-url", "https://p.example.invalid/h", "--id", "chat_theirs", check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "exists in CXone already" in result.stderr
    assert "byoc channels add" in result.stderr
    assert emulator_channels(cli.emulator)["chat_theirs"]["name"] == "Someone else's"
    assert local_channels(cli) == []


def test_delete_removes_both_sides(cli: Cli) -> None:
    created = json.loads(
        cli(
            "channels", "create", "--name", "Short-lived", "--integration-id", INTEGRATION_ID,
            "--webhook-url", "https://p.example.invalid/h", "--json",
        ).stdout
    )  # fmt: skip
    channel_id = created["id"]
    deleted = cli("channels", "delete", channel_id, "--json")
    assert json.loads(deleted.stdout) == {
        "id": channel_id,
        "remoteDeleted": True,
        "localDeleted": True,
    }
    assert "deleting DE channel" in deleted.stderr
    assert channel_id not in emulator_channels(cli.emulator)
    assert local_channels(cli) == []
    again = cli("channels", "delete", channel_id, check=False)
    assert again.returncode == 1
    assert "exists neither in CXone nor here" in again.stderr
    # A deleted id stays taken: old conversations still point at it.
    reuse = cli(
        "channels", "create", "--name", "Again", "--integration-id", INTEGRATION_ID,
        "--webhook-url", "https://p.example.invalid/h", "--id", channel_id, check=False,
    )  # fmt: skip
    assert reuse.returncode == 2
    assert "is or was mapped here" in reuse.stderr


def test_delete_keeps_the_mapping_when_cxone_is_down(cli: Cli) -> None:
    channel_id = json.loads(
        cli(
            "channels", "create", "--name", "Kept", "--integration-id", INTEGRATION_ID,
            "--webhook-url", "https://p.example.invalid/h", "--json",
        ).stdout
    )["id"]  # fmt: skip
    outage = {"rules": [], "outageSeconds": 30}
    cli.emulator.admin.put("/emulator/faults", json=outage).raise_for_status()
    result = cli("channels", "delete", channel_id, check=False)
    assert result.returncode == 1
    assert "the mapping is kept" in result.stderr
    assert [c["id"] for c in local_channels(cli)] == [channel_id]
    cli.emulator.admin.delete("/emulator/faults").raise_for_status()
    cli("channels", "delete", channel_id)
    assert local_channels(cli) == []


def test_list_remote_shows_both_sides(cli: Cli) -> None:
    mine = json.loads(
        cli(
            "channels", "create", "--name", "Mine", "--integration-id", INTEGRATION_ID,
            "--webhook-url", "https://p.example.invalid/h", "--json",
        ).stdout
    )["id"]  # fmt: skip
    with cli.emulator.api_client() as api:
        api.post(
            "/channels",
            json={
                "id": "chat_unmapped", "idOnExternalPlatform": "x",
                "channelIntegrationId": INTEGRATION_ID, "realExternalPlatformId": "custom",
                "name": "Unmapped", "isPrivate": True, "hasTreeStructure": False,
            },
        ).raise_for_status()  # fmt: skip
    cli("channels", "add", "--id", "chat_gone", "--webhook-url", "https://p.example.invalid/h")
    rows = {r["id"]: r for r in json.loads(cli("channels", "list", "--remote", "--json").stdout)}
    sides = {channel_id: (row["local"], row["remote"]) for channel_id, row in rows.items()}
    assert sides == {mine: (True, True), "chat_unmapped": (False, True), "chat_gone": (True, False)}
    assert rows[mine]["channelIntegrationId"] == INTEGRATION_ID
    text = cli("channels", "list", "--remote").stdout
    assert "CXONE" in text
    assert "Unmapped" in text
    plain = cli("channels", "list").stdout
    assert mine in plain
    assert "chat_unmapped" not in plain


# --- compensation, in-process ----------------------------------------------------------------


def _map_concurrently(db_path: Path, tenant: str = "other") -> None:
    """Another writer (a second `byoc channels add`) maps the id between the two steps: for
    another tenant (with its own DE, where this DE channel means nothing), or for this one."""
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT OR IGNORE INTO tenants VALUES"
            " ('other', 'Other', 2, 't2', 3, 'http://a', 'http://t', 'k', 's', 'c', 's', 0)"
        )
        conn.execute(
            "INSERT INTO channels (id, tenant_id, adapter, name, secret, created_at)"
            " VALUES ('chat_race', ?, 'webhook', 'Other', 's', 0)",
            (tenant,),
        )


async def _provision_with_hook(
    tmp_path: Path,
    emulator: Emulator,
    on_created: Callable[[Path], None],
    fails_with: type[ByocError] = ProvisioningError,
    at: str = "created DE channel",
) -> tuple[Database, ByocError]:
    settings = middleware_settings(tmp_path, emulator)
    db = Database(settings.database_url)
    await upgrade(db)
    await db.run_write(tenants.upsert_tenant, default_tenant(settings))

    def progress(line: str) -> None:
        if line.startswith(at):
            on_created(tmp_path / "byoc.db")

    request = NewChannel(
        id="chat_race",
        name="Race",
        integration_id=INTEGRATION_ID,
        webhook_url="https://p.example.invalid/h",
    )
    async with HttpClient() as http:
        tokens = TokenManager(
            http,
            settings.cxone_token_url,
            settings.cxone_access_key_id,
            settings.cxone_access_key_secret.get_secret_value(),
            settings.cxone_client_id,
            settings.cxone_client_secret.get_secret_value(),
        )
        client = DeClient(http, settings.cxone_api_url, tokens, timeout=2.0)
        with pytest.raises(fails_with) as caught:
            await create_channel(db, client, request, progress=progress)
    return db, caught.value


async def test_a_failed_mapping_deletes_the_de_channel_again(
    tmp_path: Path, emulator: Emulator
) -> None:
    register_integration(emulator)
    db, error = await _provision_with_hook(tmp_path, emulator, _map_concurrently)
    try:
        assert isinstance(error, ProvisioningError)
        assert error.step == "store"
        assert error.compensated is True
        assert "the DE channel was deleted again" in error.detail
        assert "chat_race" not in emulator_channels(emulator)
        assert emulator.requests("/channels/chat_race", method="DELETE")[0]["status"] == 204
        kept = await db.run_read(channels.get_channel, "chat_race")
        assert kept is not None
        assert kept.name == "Other"  # the concurrent mapping is untouched
    finally:
        await db.close()


async def test_a_failed_undo_says_what_is_left_in_cxone(tmp_path: Path, emulator: Emulator) -> None:
    register_integration(emulator)

    def map_and_break_cxone(db_path: Path) -> None:
        _map_concurrently(db_path)
        outage = {"rules": [], "outageSeconds": 30}
        emulator.admin.put("/emulator/faults", json=outage).raise_for_status()

    db, error = await _provision_with_hook(tmp_path, emulator, map_and_break_cxone)
    try:
        emulator.admin.delete("/emulator/faults").raise_for_status()
        assert isinstance(error, ProvisioningError)
        assert error.compensated is False
        assert "is left in CXone" in error.detail
        assert "byoc channels delete chat_race" in error.detail
        assert "chat_race" in emulator_channels(emulator)
    finally:
        await db.close()


async def test_a_mapping_made_meanwhile_for_the_same_tenant_keeps_the_de_channel(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The same form submitted twice, or a `byoc channels add` of the id at the same moment:
    the mapping that got there first names the DE channel this run created; deleting it would
    leave that mapping without its channel."""
    register_integration(emulator)
    db, error = await _provision_with_hook(
        tmp_path, emulator, lambda path: _map_concurrently(path, "default"), ChannelIdTaken
    )
    try:
        assert "was mapped to tenant 'default' meanwhile" in error.detail
        assert "chat_race" in emulator_channels(emulator)
        assert emulator.requests("/channels/chat_race", method="DELETE") == []
        kept = await db.run_read(channels.get_channel, "chat_race")
        assert kept is not None
        assert kept.tenant_id == "default"
    finally:
        await db.close()


async def test_an_unconfirmed_create_keeps_the_de_channel_a_mapping_made_meanwhile_names(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The same, when CXone's answer to this run's create is lost (a 5xx): the id is mapped to
    the tenant by then, so the DE channel is that mapping's, and is not deleted again."""
    register_integration(emulator)

    def map_then_fail_the_create(path: Path) -> None:
        _map_concurrently(path, "default")
        faults = {"rules": [{"match": "POST /channels", "errorRate": 1, "errorStatus": 503}]}
        emulator.admin.put("/emulator/faults", json=faults).raise_for_status()

    db, error = await _provision_with_hook(
        tmp_path, emulator, map_then_fail_the_create, ChannelIdTaken, at="creating DE channel"
    )
    try:
        emulator.admin.delete("/emulator/faults").raise_for_status()
        assert "was mapped to tenant 'default' meanwhile" in error.detail
        assert emulator.requests("/channels/chat_race", method="DELETE") == []
    finally:
        await db.close()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://169.254.169.254/", "http://[::ffff:127.0.0.1]/"]
)
def test_a_private_webhook_url_is_refused_before_cxone_is_asked(cli: Cli, url: str) -> None:
    """`channels create` checks the URL before it creates anything in CXone. (`channels add`,
    which asks CXone nothing: tests/security/test_ssrf.py.)"""
    result = cli(
        "channels", "create", "--name", "Private", "--id", "chat_private",
        "--integration-id", INTEGRATION_ID, "--webhook-url", url, check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "webhook" in lines[0], lines[0]
    assert "is not a public address" in lines[0], lines[0]
    assert result.stdout == ""
    assert local_channels(cli) == []
    assert cli.emulator.requests("/channels") == []
    assert emulator_channels(cli.emulator) == {}


class _Terminal(io.StringIO):
    """Standard input as a terminal, with what the person types."""

    def isatty(self) -> bool:
        return True


def test_delete_asks_first_on_a_terminal(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def create(name: str) -> str:
        made = cli(
            "channels", "create", "--name", name, "--integration-id", INTEGRATION_ID,
            "--webhook-url", "https://p.example.invalid/h", "--json",
        )  # fmt: skip
        channel_id: str = json.loads(made.stdout)["id"]
        return channel_id

    kept, gone = create("Kept"), create("Gone")
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    refused = cli("channels", "delete", kept, check=False)
    assert refused.returncode == 1
    assert f"Delete channel {kept} in CXone (tenant default) and here? [y/N]" in refused.stderr
    assert "nothing deleted" in refused.stderr
    assert kept in emulator_channels(cli.emulator)
    assert {c["id"] for c in local_channels(cli)} == {kept, gone}
    monkeypatch.setattr(sys, "stdin", _Terminal("yes\n"))
    cli("channels", "delete", kept)
    assert kept not in emulator_channels(cli.emulator)
    # --yes does not ask: an empty answer would have been "no".
    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    asked = cli("channels", "delete", gone, "--yes")
    assert "[y/N]" not in asked.stderr
    assert local_channels(cli) == []
