"""`byoc demo` and `scripts/demo`: any number of runs in a row, and a clear word on a busy port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def demo_ports() -> dict[str, int]:
    return {"--port": free_port(), "--emulator-port": free_port(), "--platform-port": free_port()}


def port_args(ports: dict[str, int]) -> list[str]:
    return [str(item) for pair in ports.items() for item in pair]


def run_bounded(
    command: list[str], *, timeout: float, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run a command in a session of its own; on timeout the whole session is killed, so a
    demo that hangs leaves no emulator behind."""
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,  # type: ignore[call-overload]
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise AssertionError(f"timed out after {timeout}s:\n{stdout}\n{stderr}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of the running processes that contain `text` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_scripts_demo_runs_twice_in_a_row_from_a_fresh_clone(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("the tests do not run from a git checkout")
    clone = tmp_path / "byoc"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=60)
    # The test's own environment holds every dependency; the clone's code runs in it.
    env = {**os.environ, "BYOC_DEMO_VENV": sys.prefix}
    env.pop("PYTHONPATH", None)
    for run in (1, 2):
        ports = demo_ports()
        result = run_bounded(
            ["bash", "scripts/demo", "--once", *port_args(ports)], cwd=clone, env=env, timeout=90
        )
        assert result.returncode == 0, f"run {run}:\n{result.stdout}\n{result.stderr}"
        assert "the round trip works" in result.stdout, result.stdout
        assert "the widget shows Sam" in result.stdout, result.stdout
        assert processes_mentioning(f"--port {ports['--emulator-port']}") == []
    # Both runs used the clone's default data directory: the second one started it afresh.
    assert (clone / "var" / "demo" / "byoc.db").exists()


@pytest.mark.parametrize("busy", ["--port", "--emulator-port", "--platform-port"])
def test_a_busy_port_is_one_clear_line(tmp_path: Path, busy: str) -> None:
    ports = demo_ports()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupier:
        occupier.bind(("127.0.0.1", ports[busy]))
        occupier.listen()
        result = run_bounded(
            [
                sys.executable, "-c", "import sys; from byoc.cli import main; sys.exit(main())",
                "demo", "--once", "--data-dir", str(tmp_path / "demo"), *port_args(ports),
            ],
            timeout=60,
        )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert f"port {ports[busy]}" in lines[0]
    assert busy in lines[0]
    assert "in use" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert processes_mentioning(f"--port {ports['--emulator-port']}") == []
