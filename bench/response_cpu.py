"""Micro-benchmark: `byoc serve`'s CPU per answered request, two source trees side by side.

    .venv/bin/python bench/response_cpu.py --src /path/a/src --src /path/b/src [--rounds 4]
    .venv/bin/python bench/response_cpu.py              # this checkout only

For each round and each `--src` in turn (alternating, so that a machine whose speed drifts
shifts both alike), starts `byoc serve` on a fresh SQLite file with that tree first on
`PYTHONPATH`, drives `--path` (default `/healthz`: what every answer costs before any route's
own work) with the load generator (bench/loadgen.py, its own process; `--wrk`: Debian's wrk,
one thread, lighter on the shared cores), closed loop,
`--connections` keep-alive connections, and reads the server's CPU (/proc/PID/stat) before and
after. Prints, per tree, the CPU per answered request (µs) and the requests/s of each round,
their medians, and the ratio of each tree's median to the first's. Everything on loopback;
about 15 s per round and tree.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from processes import process_cpu_seconds, tool, wait_serving
from reply_callback import free_port, loadgen, start, stop

ROOT = Path(__file__).resolve().parent.parent


def one_round(src: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(µs of server CPU per answered request, measured requests/s) for one fresh server."""
    with tempfile.TemporaryDirectory(prefix="byoc-response-cpu-") as tmp:
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(src),
            "BYOC_DATABASE_URL": f"sqlite:///{tmp}/byoc.db",
            "BYOC_PORT": str(port),
            "BYOC_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "BYOC_LOG_LEVEL": "warning",
        }
        log = Path(tmp) / "serve.log"
        upgrade_log = Path(tmp) / "upgrade.log"
        if start([tool("byoc"), "db", "upgrade"], env, upgrade_log).wait(timeout=60) != 0:
            raise SystemExit(f"{src}: byoc db upgrade failed:\n{upgrade_log.read_text()}")
        server = start([tool("byoc"), "serve"], env, log)
        try:
            wait_serving(server, f"http://127.0.0.1:{port}/healthz", log)
            spec = {
                "mode": "closed",
                "host": "127.0.0.1",
                "port": port,
                "method": "GET",
                "path": args.path,
                "connections": args.connections,
                "duration": args.duration,
                "warmup": args.warmup,
            }
            before = process_cpu_seconds(server.pid)
            result = run_wrk(spec) if args.wrk else loadgen(spec)
            spent = process_cpu_seconds(server.pid) - before
        finally:
            stop(server)
    answered = int(result["ok_total"])
    if answered == 0:
        raise SystemExit(f"{src}: no request answered 2xx")
    return spent / answered * 1e6, float(result["throughput"])


def run_wrk(spec: dict[str, Any]) -> dict[str, Any]:
    """The same closed loop driven by wrk (one thread), whose client costs less CPU than
    loadgen.py's: its warm-up and measured runs back to back, counted like loadgen's."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("--wrk: wrk not found (Debian's package wrk)")
    url = f"http://{spec['host']}:{spec['port']}{spec['path']}"
    counts = []
    for seconds in (spec["warmup"], spec["duration"]):
        argv = [wrk, "-t1", f"-c{spec['connections']}", f"-d{seconds:g}s", url]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
        if "Non-2xx" in out or "Socket errors" in out:
            raise SystemExit(f"wrk saw errors:\n{out}")
        found = re.search(r"(\d+) requests in", out)
        if found is None:
            raise SystemExit(f"wrk's output has no request count:\n{out}")
        counts.append(int(found.group(1)))
    return {"ok_total": sum(counts), "throughput": counts[1] / spec["duration"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, action="append", help="a source tree (repeatable)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--wrk", action="store_true", help="drive the server with wrk instead")
    args = parser.parse_args()
    trees = [path.resolve() for path in (args.src or [ROOT / "src"])]
    # By position, not by path: the same tree given twice (a check of the noise) is measured
    # and reported twice.
    cpu: list[list[float]] = [[] for _ in trees]
    rate: list[list[float]] = [[] for _ in trees]
    for number in range(1, args.rounds + 1):
        for position, tree in enumerate(trees):
            per_request, per_second = one_round(tree, args)
            cpu[position].append(per_request)
            rate[position].append(per_second)
            print(
                f"round {number}: {tree}: {per_request:.1f} µs CPU per request, "
                f"{per_second:,.0f} req/s",
                flush=True,
            )
    first = statistics.median(cpu[0])
    for position, tree in enumerate(trees):
        median = statistics.median(cpu[position])
        print(
            f"{tree}: median {median:.1f} µs CPU per request ({median / first:.3f} x the "
            f"first), {statistics.median(rate[position]):,.0f} req/s; {args.path}, "
            f"{args.connections} connections, {args.rounds} rounds"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
