"""The benchmarks still run end to end and produce numbers (tiny sizes)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import descendants

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a benchmark to its end. Its time limit is only there to end a run that hangs, with
    every process the benchmark started (they run in sessions of their own): a loaded machine
    may take minutes."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for pid in descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            stdout, stderr = process.communicate()
            raise AssertionError(f"{command} hung:\n{stdout.decode()}\n{stderr.decode()}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def bench(tmp_path: Path, script: str, *args: str) -> dict[str, Any]:
    out = tmp_path / "result.json"
    done = run_bench(
        [sys.executable, str(BENCH / script), "--runs", "1", "--json", str(out), *args]
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"median of 1" in done.stdout
    result: dict[str, Any] = json.loads(out.read_text())
    assert len(result["runs"]) == 1
    assert result["command"].startswith(f"bench/{script}")
    return result


def finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_customer_message(tmp_path: Path) -> None:
    result = bench(
        tmp_path,
        "customer_message.py",
        *("--rate", "40", "--customers", "4", "--duration", "1", "--warmup", "0.2"),
        *("--baseline-duration", "0.3", "--drain-limit", "10"),
    )
    run = result["runs"][0]
    assert run["messages"] == 40
    assert run["received"] == 40
    assert run["statuses"] == {"202": 40}
    assert all(finite(run[k]) for k in ("p50_ms", "p99_ms", "healthz_p99_ms", "ratio_p99"))
    assert 0 < run["p50_ms"] <= run["p99_ms"]


def test_widget_push(tmp_path: Path) -> None:
    result = bench(
        tmp_path,
        "widget_push.py",
        *("--widgets", "4", "--rate", "20", "--duration", "1", "--warmup", "0.2"),
        *("--baseline-duration", "0.3", "--drain-limit", "10"),
    )
    run = result["runs"][0]
    assert run["replies"] == 20
    assert run["shown"] == 20
    assert run["misrouted"] == 0
    assert run["errors"] == 0
    assert all(finite(run[k]) for k in ("p50_ms", "p99_ms", "healthz_p99_ms", "ratio_p99"))


def test_idle_sockets(tmp_path: Path) -> None:
    result = bench(
        tmp_path, "idle_sockets.py", "--sockets", "40", "--processes", "2", "--settle", "0.5"
    )
    run = result["runs"][0]
    assert run["sockets"] == 40
    assert run["failed"] == 0
    assert run["server_fds_added"] >= 40
    assert run["rss_after_mib"] > run["rss_before_mib"] > 10
    assert result["nofile"]["used"] >= min(result["nofile"]["hard"], 40 + 1024)


def test_idle_timers(tmp_path: Path) -> None:
    result = bench(
        tmp_path,
        "idle_timers.py",
        *("--conversations", "500", "--duration", "0.5", "--settle", "0.5"),
    )
    run = result["runs"][0]
    assert run["pending_timers_seeded"] == 500
    assert run["pending_timers_empty"] == 0
    assert finite(run["cpu_percent_seeded"])
    assert run["cpu_percent_seeded"] >= 0
    assert finite(run["cpu_percent_empty"])
    assert run["cpu_percent_empty"] >= 0


# Tiny phases; a step that passes whatever the machine's load: these check the mechanics.
SUSTAINED_SMOKE = (
    *("--conversations", "3", "--connections", "4", "--duration", "0.3"),
    *("--intake-duration", "0.5"),
    *("--warmup", "0.1", "--step-duration", "0.5", "--steps", "1", "--start-fraction", "0.1"),
    *("--accept-p99-ms", "30000", "--backlog-seconds", "1000", "--drain-limit", "30"),
)


def check_sustained(run: dict[str, Any]) -> None:
    assert run["healthz_rps"] > 0
    assert run["intake_accepted"] > 0
    assert run["intake_errors"] == 0
    # Every reply accepted in the intake phase was delivered to the receiver.
    assert run["intake_left_after_drain"] == 0
    assert run["intake_work"]["delivered"] >= run["intake_accepted"]
    [step] = run["steps"]
    assert step["passed"]
    assert step["ok"] == step["requests"] > 0
    assert step["left_after_drain"] == 0
    assert run["sustained_rps"] == step["rate"]
    assert finite(run["sustained_ratio"])
    assert run["sustained_ratio"] > 0
    assert step["work"]["delivered"] == step["ok"]
    assert run["byoc_cpu_ms_per_reply"] > 0


def test_sustained(tmp_path: Path) -> None:
    result = bench(tmp_path, "sustained.py", *SUSTAINED_SMOKE)
    assert result["database"] == "sqlite"
    run = result["runs"][0]
    check_sustained(run)
    assert "pg_backend_cpu_s" not in run["sustained_work"]


@pytest.mark.postgres
def test_sustained_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    result = bench(
        tmp_path,
        "sustained.py",
        *SUSTAINED_SMOKE,
        *("--database-url", postgres_url, "--workers", "1"),  # one process, as on SQLite
    )
    assert result["database"] == "postgresql"
    run = result["runs"][0]
    check_sustained(run)
    work = run["sustained_work"]
    assert work["pg_backend_cpu_s"] >= 0
    assert work["wal_bytes_per_reply"] > 0  # each delivered reply was written
    assert work["write_transactions"] > 0


def test_token_endpoint(tmp_path: Path) -> None:
    result = bench(tmp_path, "token_endpoint.py", "--duration", "1", "--warmup", "0.2")
    run = result["runs"][0]
    assert run["errors"] == 0
    assert set(run["token_statuses"]) == {"200"}
    assert run["token_rps"] > 0
    assert finite(run["ratio"])
    assert run["ratio"] > 0


def test_workers_is_passed_on_or_refused_with_a_reason(tmp_path: Path) -> None:
    """On SQLite `--workers 2` either runs (a build that supports it there) or stops with a
    line that names the option, never a traceback."""
    out = tmp_path / "result.json"
    args = ("--runs", "1", "--json", str(out), "--duration", "0.5", "--warmup", "0.1")
    done = run_bench([sys.executable, str(BENCH / "token_endpoint.py"), *args, "--workers", "2"])
    if done.returncode == 0:
        assert json.loads(out.read_text())["workers"] == 2
    else:
        assert b"Traceback" not in done.stderr
        assert b"--workers" in done.stdout + done.stderr


def micro(script: str, *args: str) -> list[str]:
    done = run_bench([sys.executable, str(BENCH / script), *args])
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return done.stdout.decode().splitlines()


def test_client_cpu_measures_each_client() -> None:
    lines = micro("client_cpu.py", "--calls", "50", "--concurrency", "2", "--rounds", "1")
    for client in ("httpx", "aiohttp", "byoc.http"):
        row = next(line.split() for line in lines if line.startswith(client + " "))
        in_flight, cpu_us, rate = (float(v) for v in row[1:])
        assert in_flight == 2
        assert cpu_us > 0
        assert rate > 0


def test_response_cpu_alternates_the_trees_it_is_given() -> None:
    src = str(BENCH.parent / "src")
    args = ("--src", src, "--src", src, "--rounds", "1", "--duration", "0.5", "--warmup", "0.2")
    lines = micro("response_cpu.py", *args)
    rounds = [line for line in lines if line.startswith("round 1: ")]
    medians = [line for line in lines if " median " in line]
    assert len(rounds) == 2
    assert len(medians) == 2
    # One round each: each median is its own round's figure (the same tree twice is measured,
    # and reported, twice).
    for measured, median in zip(rounds, medians, strict=True):
        figure = measured.split(": ")[2].split(" µs")[0]
        assert median.split(" median ")[1].startswith(figure + " µs"), (measured, median)


def test_statement_cost_measures_both_paths() -> None:
    lines = [line for line in micro("statement_cost.py", "--executions", "50", "--rounds", "1")]
    assert len([line for line in lines if line.endswith("µs per execution")]) == 4


@pytest.mark.postgres
def test_statement_cost_on_postgres_measures_both_paths_and_transaction_shapes(
    postgres_url: str,
) -> None:
    lines = micro(
        "statement_cost.py", "--executions", "64", "--rounds", "1", "--postgres-url", postgres_url
    )
    assert len([line for line in lines if line.endswith("µs CPU per execution")]) == 4
    # Four group-commit shapes and the intake's three.
    assert len([line for line in lines if line.endswith("µs CPU per job")]) == 7


@pytest.mark.postgres
def test_round_trips_counts_every_request(tmp_path: Path, postgres_url: str) -> None:
    out = tmp_path / "trips.json"
    done = run_bench(
        [
            sys.executable,
            str(BENCH / "round_trips.py"),
            *("--postgres-url", postgres_url, "--samples", "1", "--warmup", "1"),
            *("--burst", "4", "--quiet", "0.2", "--json", str(out)),
        ]
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    kinds = json.loads(out.read_text())["kinds"]
    assert set(kinds) == {"reply", "customer message", "token", "reply, 4 at once"}
    for kind in ("reply", "customer message", "reply, 4 at once"):
        assert kinds[kind]["trips"]["median"] > 0
        assert kinds[kind]["statements"]["median"] > 0
    assert any("INSERT INTO messages" in line for line in kinds["reply"]["listing"])
