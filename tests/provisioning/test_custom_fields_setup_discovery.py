"""`byoc custom-fields sync`, `byoc setup` and region discovery, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from byoc.provisioning.custom_fields import CustomFieldsFileError, load_definitions
from tests.support.cli import Cli

FIELDS: list[dict[str, Any]] = [
    {"ident": "plan", "label": "Plan", "type": "list", "values": ["free", "pro"]},
    {"ident": "email", "label": "E-mail", "type": "email", "isRequired": True},
    {"ident": "note", "label": "Note", "isEditable": False},
]

TOML_FIELDS = """
[[fields]]
ident = "plan"
label = "Plan"
type = "list"
values = ["free", "pro"]

[[fields]]
ident = "vip"
label = "VIP"
"""


def definitions(cli: Cli) -> dict[str, dict[str, object]]:
    with cli.emulator.api_client() as api:
        data = api.get("/customers/custom-field-definitions").json()["data"]
    return {d["ident"]: d for d in data}


def test_custom_fields_sync_applies_each_field_idempotently(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "fields.json"
    path.write_text(json.dumps(FIELDS))
    first = cli("custom-fields", "sync", BYOC_CUSTOM_FIELDS_FILE=str(path))
    assert "3 of 3 custom field definition(s) applied, 0 failed" in first.stdout
    puts = cli.emulator.requests("/customers/custom-field-definitions", method="PUT")
    sent = [p["requestBody"] for p in puts]
    assert sent == [*FIELDS[:2], {**FIELDS[2], "type": "text"}]  # text is the default type
    assert all(p["status"] == 200 for p in puts)
    after_first = definitions(cli)
    assert after_first["plan"]["values"] == ["free", "pro"]
    assert after_first["email"]["isRequired"] is True

    second = cli("custom-fields", "sync", "--file", str(path), "--json")
    assert json.loads(second.stdout) == {"applied": ["plan", "email", "note"], "failed": []}
    assert definitions(cli) == after_first


def test_custom_fields_from_toml(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "fields.toml"
    path.write_text(TOML_FIELDS)
    cli("custom-fields", "sync", "--file", str(path))
    assert set(definitions(cli)) == {"plan", "vip"}
    assert definitions(cli)["vip"]["type"] == "text"


def test_a_bad_file_is_reported_by_position_and_nothing_is_sent(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            [
                {"ident": "ok", "label": "Fine"},
                {"ident": "plan", "label": "Plan", "type": "list"},
                {"ident": "x", "label": "", "type": "number", "colour": "red"},
                "just a string",
                {"ident": "ok", "label": "Again", "isRequired": "yes"},
            ]
        )
    )
    result = cli("custom-fields", "sync", "--file", str(path), check=False)
    assert result.returncode == 2
    err = result.stderr
    assert "field #2 (plan): values: a list field needs a non-empty list of values" in err
    assert "field #3 (x): unknown key 'colour'" in err
    assert "field #3 (x): label: is required" in err
    assert "field #3 (x): type: must be one of text, email, list, not 'number'" in err
    assert "field #4: must be an object" in err
    assert "field #5 (ok): ident repeats field #1" in err
    assert "field #5 (ok): isRequired: must be true or false" in err
    assert "field #1" not in err.replace("repeats field #1", "")
    assert cli.emulator.requests("/customers/custom-field-definitions") == []


def test_unreadable_files_and_no_file(cli: Cli, tmp_path: Path) -> None:
    assert cli("custom-fields", "sync", check=False).returncode == 2
    broken = tmp_path / "broken.toml"
    broken.write_text("[[fields]\nident=")
    result = cli("custom-fields", "sync", "--file", str(broken), check=False)
    assert result.returncode == 2
    assert "not valid TOML" in result.stderr
    with pytest.raises(CustomFieldsFileError, match="cannot read"):
        load_definitions(tmp_path / "missing.json")
    not_a_list = tmp_path / "object.json"
    not_a_list.write_text('{"ident": "x"}')
    with pytest.raises(CustomFieldsFileError, match="must be a list"):
        load_definitions(not_a_list)


def test_a_field_cxone_refuses_is_reported_and_the_rest_applied(cli: Cli, tmp_path: Path) -> None:
    faults = {
        "rules": [
            {"match": "PUT /customers/custom-field-definitions", "errorRate": 1,
             "errorStatus": 400, "times": 1}
        ]
    }  # fmt: skip
    cli.emulator.admin.put("/emulator/faults", json=faults).raise_for_status()
    path = tmp_path / "fields.json"
    path.write_text(json.dumps(FIELDS))
    result = cli("custom-fields", "sync", "--file", str(path), check=False)
    assert result.returncode == 1
    assert "failed  plan" in result.stdout
    assert "2 of 3 custom field definition(s) applied, 1 failed" in result.stdout
    assert set(definitions(cli)) == {"email", "note"}


def test_setup_prints_what_the_administrator_enters(cli: Cli) -> None:
    created = json.loads(cli("clients", "create", "--json").stdout)
    public = "https://byoc.example.com"
    text = cli("setup", BYOC_PUBLIC_URL=public + "/")
    out = text.stdout
    assert f"Integration Box URL:                  {public}/integration/box" in out
    assert f"{public}/integration/box/1.0/token" in out
    assert created["client_id"] in out
    assert created["client_secret"] not in out
    assert "Use DFO 3.0 Outbound API for replies: on (recommended)" in out
    assert f"{public}/integration/action" in out
    assert f"{public}/integration/reconnect" in out
    assert f"{public}/integration/remove" in out
    assert "BYOC_CXONE_CHANNEL_INTEGRATION_ID is not set" in text.stderr

    document = json.loads(
        cli(
            "setup", "--json", BYOC_PUBLIC_URL=public,
            BYOC_CXONE_CHANNEL_INTEGRATION_ID="int-42",
        ).stdout
    )  # fmt: skip
    fields = {f["field"]: f["value"] for f in document["fields"]}
    assert fields["Integration Box URL"] == public + "/integration/box"
    assert fields["Authorization URL"] == public + "/integration/box/1.0/token"
    assert fields["Client ID"] == created["client_id"]
    assert fields["Action URL"] == public + "/integration/action?channelIntegrationId=int-42"
    assert document["warnings"] == []


def test_setup_without_clients_says_how_to_make_one(cli: Cli) -> None:
    out = cli("setup").stdout
    assert "run `byoc clients create`" in out


def test_discovery_prints_the_regional_endpoints(cli: Cli) -> None:
    tenant = cli.emulator.config.tenant_id
    result = cli(
        "tenants", "discover", "--tenant-id", tenant, "--discovery-url", cli.emulator.url, "--json"
    )
    found = json.loads(result.stdout)
    assert found["apiUrl"] == cli.emulator.api_url
    assert found["tokenUrl"] == cli.emulator.url + "/auth/token"
    query = cli.emulator.requests("/.well-known/cxone-configuration")[0]["query"]
    assert tenant in str(query)
    # The default tenant id and discovery URL come from the settings.
    text = cli("tenants", "discover", BYOC_CXONE_DISCOVERY_URL=cli.emulator.url).stdout
    assert f"api url:   {cli.emulator.api_url}" in text
    unknown = cli(
        "tenants", "discover", "--tenant-id", "00000000-0000-0000-0000-000000000000",
        "--discovery-url", cli.emulator.url, check=False,
    )  # fmt: skip
    assert unknown.returncode == 1
    assert "discovery of tenant" in unknown.stderr


def test_tenants_add_discover_fills_the_endpoints_and_the_tenant_works(cli: Cli) -> None:
    config = cli.emulator.config
    added = cli(
        "tenants", "add", "--id", "eu", "--brand-id", "2002", "--tenant-id", config.tenant_id,
        "--business-unit-id", "1", "--discover", "--access-key-id", config.access_key_id,
        "--access-key-secret", config.access_key_secret, "--client-id", config.client_id,
        "--client-secret", config.client_secret, BYOC_CXONE_DISCOVERY_URL=cli.emulator.url,
    )  # fmt: skip
    assert f"discovered api url {cli.emulator.api_url}" in added.stdout
    assert cli.emulator.api_url in cli("tenants", "list").stdout
    # The discovered endpoints are good enough to talk to CXone with.
    rows = json.loads(cli("channels", "list", "--remote", "--tenant", "eu", "--json").stdout)
    assert rows == []
    missing = cli(
        "tenants", "add", "--id", "x", "--brand-id", "1", "--tenant-id", "t",
        "--business-unit-id", "1", "--access-key-id", "k", "--access-key-secret", "s",
        "--client-id", "c", "--client-secret", "cs", check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "--discover" in missing.stderr
