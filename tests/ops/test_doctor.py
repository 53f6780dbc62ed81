"""`byoc doctor` against the emulator (passes), against a dead port (fails), and with the
server's stored default tenant unlike its own environment's (checks the stored one)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from byoc.cli import main
from tests.support.emulator import Emulator
from tests.support.servers import free_port

Point = Callable[[str], None]


@pytest.fixture
def point_at(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Point:
    """Sets the shell's environment: a store in `tmp_path`, CXone at the URL given."""

    def point(cxone_url: str) -> None:
        monkeypatch.setenv("BYOC_DATABASE_URL", f"sqlite:///{tmp_path / 'byoc.db'}")
        monkeypatch.setenv("BYOC_CXONE_API_URL", cxone_url + "/dfo/3.0")
        monkeypatch.setenv("BYOC_CXONE_TOKEN_URL", cxone_url + "/auth/token")
        monkeypatch.setenv("BYOC_CXONE_TIMEOUT_SECONDS", "2")

    return point


def test_doctor_passes_against_the_emulator(
    emulator: Emulator, point_at: Point, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(emulator.url)
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
    point_at: Point, capsys: pytest.CaptureFixture[str]
) -> None:
    point_at(f"http://127.0.0.1:{free_port()}")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  store" in out
    assert "byoc db upgrade" in out
    assert "FAIL  cxone[default] token" in out
    # Without the store, the environment's tenant is checked, and the output says so.
    warning = next(line for line in out.splitlines() if "tenant[default]" in line)
    assert warning.startswith("WARN")
    assert "the store could not be read" in warning
    assert "doctor: 2 check(s) failed" in out


def test_doctor_checks_the_stored_default_tenant_not_its_own_environments(
    emulator: Emulator, point_at: Point, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server's environment points at the emulator; a command stores its default tenant
    # as the server's start would.
    point_at(emulator.url)
    assert main(["db", "upgrade"]) == 0
    assert main(["channels", "list"]) == 0
    # doctor is then run from a shell whose CXone settings point elsewhere.
    point_at(f"http://127.0.0.1:{free_port()}")
    capsys.readouterr()
    assert main(["doctor", "--pings", "1"]) == 0
    out = capsys.readouterr().out
    assert "PASS  cxone[default] token" in out
    warning = next(line for line in out.splitlines() if "tenant[default]" in line)
    assert warning.startswith("WARN")
    assert "differs from this environment's" in warning
    assert len(emulator.requests(path_contains="/channels", method="GET")) == 1
