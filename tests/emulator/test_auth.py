"""Token endpoint, bearer checks and discovery documents (contract §3.1)."""

from __future__ import annotations

import time

import httpx

from cxone_emulator.config import EmulatorConfig
from tests.support.emulator import Emulator, running_emulator


def _token_request(emu: Emulator, **overrides: object) -> httpx.Response:
    form = {
        "grant_type": "password",
        "username": emu.config.access_key_id,
        "password": emu.config.access_key_secret,
    }
    auth = overrides.pop("auth", (emu.config.client_id, emu.config.client_secret))
    form.update({k: str(v) for k, v in overrides.items()})
    return emu.admin.post("/auth/token", data=form, auth=auth)  # type: ignore[arg-type]


def test_token_is_issued_for_good_credentials(emulator: Emulator) -> None:
    response = _token_request(emulator)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]
    assert body["id_token"].count(".") == 2


def test_bad_client_credentials_are_401_invalid_client(emulator: Emulator) -> None:
    assert _token_request(emulator, auth=("emulator-app", "wrong")).json() == {
        "error": "invalid_client",
        "error_description": "unknown client or bad client secret",
    }
    response = emulator.admin.post("/auth/token", data={"grant_type": "password"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_bad_access_key_is_400_invalid_grant(emulator: Emulator) -> None:
    response = _token_request(emulator, password="nope")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_other_grant_is_unsupported(emulator: Emulator) -> None:
    response = _token_request(emulator, grant_type="client_credentials")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_de_api_refuses_missing_unknown_and_expired_tokens(emulator: Emulator) -> None:
    missing = emulator.admin.get(f"{emulator.api_url}/channels")
    assert missing.status_code == 401
    assert missing.json()["errors"][0]["errorCode"] == "Unauthorized"
    assert "uid" in missing.json()
    unknown = emulator.admin.get(
        f"{emulator.api_url}/channels", headers={"Authorization": "Bearer forged"}
    )
    assert unknown.status_code == 401

    token = emulator.token()
    headers = {"Authorization": f"Bearer {token}"}
    assert emulator.admin.get(f"{emulator.api_url}/channels", headers=headers).status_code == 200
    assert emulator.admin.put("/emulator/tokens/expire").json()["expired"] >= 1
    assert emulator.admin.get(f"{emulator.api_url}/channels", headers=headers).status_code == 401


def test_tiny_token_ttl_expires_by_itself() -> None:
    # A second of life: enough for the first call on a busy machine (0.2 s was not, once).
    with running_emulator(EmulatorConfig(token_ttl_seconds=1.0)) as emu:
        headers = {"Authorization": f"Bearer {emu.token()}"}
        assert emu.admin.get(f"{emu.api_url}/channels", headers=headers).status_code == 200
        time.sleep(1.1)
        assert emu.admin.get(f"{emu.api_url}/channels", headers=headers).status_code == 401


def test_openid_configuration_points_at_token_endpoint(emulator: Emulator) -> None:
    body = emulator.admin.get("/.well-known/openid-configuration").json()
    assert body == {"issuer": emulator.url, "token_endpoint": f"{emulator.url}/auth/token"}


def test_cxone_configuration_for_the_tenant(emulator: Emulator) -> None:
    tenant = emulator.config.tenant_id
    body = emulator.admin.get(
        "/.well-known/cxone-configuration", params={"tenantId": tenant}
    ).json()
    assert body == {
        "tenantId": tenant,
        "area": "na1",
        "domain": "niceincontact.com",
        "api_endpoint": emulator.url,
        "auth_endpoint": emulator.url,
        "ui_endpoint": emulator.url,
        "token_endpoint": f"{emulator.url}/auth/token",
        "de_api_base": emulator.api_url,
    }


def test_cxone_configuration_refuses_unknown_or_missing_tenant(emulator: Emulator) -> None:
    unknown = emulator.admin.get("/.well-known/cxone-configuration", params={"tenantId": "x"})
    assert unknown.status_code == 404
    missing = emulator.admin.get("/.well-known/cxone-configuration")
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "tenantId"


def test_public_url_overrides_request_url() -> None:
    config = EmulatorConfig(public_url="https://cxone.example.test/")
    with running_emulator(config) as emu:
        body = emu.admin.get("/.well-known/openid-configuration").json()
    assert body["token_endpoint"] == "https://cxone.example.test/auth/token"
