"""The four latency/resource benchmarks still run end to end and produce numbers (tiny sizes)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench(tmp_path: Path, script: str, *args: str) -> dict[str, Any]:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--runs", "1", "--json", str(out), *args],
        capture_output=True,
        timeout=60,
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
        *("--baseline-duration", "0.5", "--drain-limit", "10"),
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
        *("--baseline-duration", "0.5", "--drain-limit", "10"),
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
        *("--conversations", "500", "--duration", "2", "--settle", "1"),
    )
    run = result["runs"][0]
    assert run["pending_timers_seeded"] == 500
    assert run["pending_timers_empty"] == 0
    assert finite(run["cpu_percent_seeded"])
    assert run["cpu_percent_seeded"] >= 0
    assert finite(run["cpu_percent_empty"])
    assert run["cpu_percent_empty"] >= 0


def micro(script: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, timeout=60
    )
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


def test_statement_cost_measures_both_paths() -> None:
    lines = [line for line in micro("statement_cost.py", "--executions", "50", "--rounds", "1")]
    assert len([line for line in lines if line.endswith("µs per execution")]) == 4
