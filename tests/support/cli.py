"""The `byoc` command run in-process against the emulator, with a registered BYOC integration."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from byoc.cli import run_captured
from tests.support.emulator import Emulator
from tests.support.stack import SIGNING_KEY

INTEGRATION_ID = "byoc-int-1"


def register_integration(
    emulator: Emulator, box_url: str = "http://127.0.0.1:9/integration/box", **extra: Any
) -> None:
    response = emulator.admin.post(
        "/emulator/integrations",
        json={
            "id": INTEGRATION_ID,
            "boxUrl": box_url,
            "authorizationUrl": box_url + "/1.0/token",
            "clientId": "cxone",
            "clientSecret": "cxone-secret",
            **extra,
        },
    )
    assert response.status_code == 201, response.text


def cli_env(tmp_path: Path, emulator: Emulator, **extra: str) -> dict[str, str]:
    config = emulator.config
    return {
        **os.environ,
        "BYOC_ENVIRONMENT": "test",
        "BYOC_TOKEN_SIGNING_KEY": SIGNING_KEY,
        "BYOC_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "BYOC_CXONE_API_URL": emulator.api_url,
        "BYOC_CXONE_TOKEN_URL": emulator.url + "/auth/token",
        "BYOC_CXONE_ACCESS_KEY_ID": config.access_key_id,
        "BYOC_CXONE_ACCESS_KEY_SECRET": config.access_key_secret,
        "BYOC_CXONE_CLIENT_ID": config.client_id,
        "BYOC_CXONE_CLIENT_SECRET": config.client_secret,
        "BYOC_CXONE_BRAND_ID": str(config.brand_id),
        "BYOC_CXONE_TENANT_ID": config.tenant_id,
        "BYOC_CXONE_BUSINESS_UNIT_ID": str(config.business_unit_id),
        "BYOC_CXONE_TIMEOUT_SECONDS": "3",
        **extra,
    }


def run_cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code, out, err = run_captured(argv, env)
    return subprocess.CompletedProcess(argv, code, out, err)


@dataclass
class Cli:
    tmp_path: Path
    emulator: Emulator
    env: dict[str, str]

    def __call__(
        self, *args: str, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """`byoc ARGS` with these BYOC_* variables, run in this process: the command's own
        `main()`, its output captured (tests/byoc/test_cli.py runs it as a subprocess)."""
        with ThreadPoolExecutor(max_workers=1) as pool:  # off any event loop of the caller
            result = pool.submit(run_cli, list(args), {**self.env, **env}).result(timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(
                f"byoc {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    @property
    def database_url(self) -> str:
        return self.env["BYOC_DATABASE_URL"]
