"""`byoc doctor` against the emulator (passes) and against a dead port (fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from byoc.cli import main
from tests.support.emulator import Emulator
from tests.support.servers import free_port


def use_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cxone_url: str) -> None:
    monkeypatch.setenv("BYOC_DATABASE_URL", f"sqlite:///{tmp_path / 'byoc.db'}")
    monkeypatch.setenv("BYOC_CXONE_API_URL", cxone_url + "/dfo/3.0")
    monkeypatch.setenv("BYOC_CXONE_TOKEN_URL", cxone_url + "/auth/token")
    monkeypatch.setenv("BYOC_CXONE_TIMEOUT_SECONDS", "2")


def test_doctor_passes_against_the_emulator(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_env(monkeypatch, tmp_path, emulator.url)
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["doctor", "--pings", "3"]) == 0
    out = capsys.readouterr().out
    assert "PASS  store" in out
    assert "PASS  cxone[default] token" in out
    api_line = next(line for line in out.splitlines() if "cxone[default] api" in line)
    assert api_line.startswith("PASS")
    assert "3 x GET /channels: min" in api_line
    assert "median" in api_line
    assert out.rstrip().endswith("doctor: all checks passed")
    assert len(emulator.requests(path_contains="/channels", method="GET")) == 3


def test_doctor_fails_on_a_dead_port_and_an_old_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_env(monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  store" in out
    assert "byoc db upgrade" in out
    assert "FAIL  cxone[default] token" in out
    assert "doctor: 2 check(s) failed" in out
