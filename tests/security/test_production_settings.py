"""Production refuses settings that are only fit for development, one clear line each."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from byoc.cli import run_captured
from byoc.settings import (
    MIN_SECRET_ENTROPY_BITS,
    Settings,
    estimated_entropy_bits,
    settings_error_lines,
    weak_secret_problem,
)

STRONG = {
    "token_signing_key": secrets.token_urlsafe(48),
    "admin_token": secrets.token_urlsafe(32),
    "metrics_token": secrets.token_urlsafe(32),
    "public_url": "https://byoc.example.com",
    "cxone_api_url": "https://api-de-na1.niceincontact.com/dfo/3.0",
    "cxone_token_url": "https://cxone.niceincontact.com/auth/token",
    "cxone_access_key_id": "AK-" + secrets.token_hex(8),
    "cxone_access_key_secret": secrets.token_urlsafe(32),
    "cxone_client_id": "app-" + secrets.token_hex(4),
    "cxone_client_secret": secrets.token_urlsafe(32),
}


def problems(**overrides: object) -> list[str]:
    values = {**STRONG, **overrides}
    with pytest.raises(ValidationError) as caught:
        Settings(environment="production", **values)  # type: ignore[arg-type]
    return settings_error_lines(caught.value)


def test_strong_production_settings_are_accepted() -> None:
    settings = Settings(environment="production", **STRONG)  # type: ignore[arg-type]
    assert settings.public_url == "https://byoc.example.com"


def test_production_defaults_are_refused_one_line_each() -> None:
    lines = problems(
        public_url="http://byoc.example.com",
        cxone_api_url="http://127.0.0.1:8090/dfo/3.0",
        cxone_token_url="http://localhost:8090/auth/token",
        cxone_access_key_id="emulator-access-key",
        cxone_access_key_secret="emulator-access-secret",
        cxone_client_id="emulator-app",
        cxone_client_secret="emulator-app-secret",
    )
    joined = "\n".join(lines)
    assert "BYOC_PUBLIC_URL must be https://" in joined
    assert "BYOC_CXONE_API_URL points at this machine" in joined
    assert "BYOC_CXONE_TOKEN_URL points at this machine" in joined
    assert "emulator's credentials" in joined
    assert "BYOC_CXONE_ACCESS_KEY_SECRET" in joined
    assert len(lines) == 4


@pytest.mark.parametrize(
    "admin_token",
    ["short-token", "a" * 40, "abcd" * 10, "password" * 5],
)
def test_weak_admin_tokens_are_refused(admin_token: str) -> None:
    (line,) = problems(admin_token=admin_token)
    assert line.startswith("BYOC_ADMIN_TOKEN")


def test_a_disabled_admin_api_needs_no_token() -> None:
    Settings(environment="production", **{**STRONG, "admin_token": ""})  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["x" * 64, "0123456789" * 4])
def test_a_predictable_signing_key_is_refused(key: str) -> None:
    (line,) = problems(token_signing_key=key)
    assert line.startswith("BYOC_TOKEN_SIGNING_KEY is too predictable")


def test_cxone_on_ipv6_or_mapped_loopback_is_refused() -> None:
    lines = problems(
        cxone_api_url="https://[::1]/dfo/3.0",
        cxone_token_url="https://[::ffff:127.0.0.1]/auth/token",
    )
    assert len(lines) == 2


def test_random_secrets_clear_the_entropy_bar() -> None:
    # The bar must not refuse what the README tells operators to generate.
    for _ in range(2000):
        for secret in (secrets.token_hex(16), secrets.token_urlsafe(24)):
            assert estimated_entropy_bits(secret) >= MIN_SECRET_ENTROPY_BITS
            assert weak_secret_problem("BYOC_ADMIN_TOKEN", secret) is None, secret


def test_byoc_serve_exits_with_one_line_per_problem(tmp_path: Path) -> None:
    byoc = Path(sys.executable).parent / "byoc"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BYOC_") or key == "BYOC_TEST_POSTGRES_URL"
    }
    env |= {
        "BYOC_ENVIRONMENT": "production",
        "BYOC_TOKEN_SIGNING_KEY": secrets.token_urlsafe(48),
        "BYOC_ADMIN_TOKEN": "admin",
        "BYOC_DATABASE_URL": f"sqlite:///{tmp_path}/byoc.db",
    }
    result = subprocess.run(
        [str(byoc), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert all(line.startswith("byoc: invalid setting: ") for line in lines), lines
    assert any("BYOC_ADMIN_TOKEN must be at least 32 characters" in line for line in lines)
    assert any("emulator's credentials" in line for line in lines)
    assert any("BYOC_PUBLIC_URL" in line for line in lines)
    assert any("BYOC_CXONE_API_URL" in line for line in lines)


def test_the_example_manifests_fill_me_in_values_are_refused() -> None:
    lines = problems(token_signing_key="REPLACE_ME_WITH_AT_LEAST_32_RANDOM_CHARACTERS")
    assert lines == ["placeholder secrets are refused outside development: BYOC_TOKEN_SIGNING_KEY"]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("admin_token", "REPLACE_ME_WITH_A_LONG_RANDOM_ADMIN_TOKEN_VALUE"),
        ("metrics_token", "REPLACE_ME_WITH_A_LONG_RANDOM_METRICS_TOKEN_VALUE"),
        ("admin_token", "abcdefghijklmnopqrstuvwxyz0123456789"),
        ("metrics_token", "your-metrics-token-goes-here-0000000000"),
        ("token_signing_key", "0123456789abcdef0123456789abcdef01"),
        ("token_signing_key", "REPLACE-ME-WITH-AT-LEAST-32-RANDOM-CHARACTERS"),
    ],
)
def test_fill_me_in_and_patterned_secrets_are_refused(setting: str, value: str) -> None:
    (line,) = problems(**{setting: value})
    assert line.startswith(f"BYOC_{setting.upper()}") or "placeholder secrets" in line, line


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "byoc.example.com"])
def test_the_development_key_serves_loopback_only(tmp_path: Path, host: str) -> None:
    """It is in the source: on a reachable address anyone could sign box tokens with it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BYOC_") or key == "BYOC_TEST_POSTGRES_URL"
    }
    env |= {"BYOC_DATABASE_URL": f"sqlite:///{tmp_path}/byoc.db"}
    code, _out, err = run_captured(["serve", "--host", host], env)
    assert code == 2
    assert err.startswith(
        f"byoc serve: the development signing key serves loopback only, not {host}"
    )


@pytest.mark.parametrize(
    "passphrase",
    ["exchange-meadow-violin-crater-tundra-obelisk", "orbit-your-turkey-lantern-quartz-fjord"],
)
def test_a_passphrase_that_merely_contains_a_fill_me_in_word_is_accepted(passphrase: str) -> None:
    Settings(environment="production", **{**STRONG, "admin_token": passphrase})  # type: ignore[arg-type]
