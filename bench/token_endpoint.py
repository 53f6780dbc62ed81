"""Benchmark: the box token endpoint (`POST /integration/box/1.0/token`) vs `/healthz`.

    .venv/bin/python bench/token_endpoint.py               # 3 runs, about 1 minute
    .venv/bin/python bench/token_endpoint.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/token_endpoint.py --database-url ... --workers 2

Everything on loopback, bounded in time and count. Each run starts `byoc serve` (a fresh SQLite
file or a fresh PostgreSQL database; `--workers N` passed on when given) with one box client,
then, with the load generator as its own process (bench/loadgen.py), 64 connections, closed
loop, in the same run:

  1. `GET /healthz` saturated                                       -> baseline req/s
  2. the token request CXone makes: `grant_type=client_credentials` as a form body, the
     client's id and secret as HTTP Basic (valid credentials, so every answer is 200 with a
     signed token)                                                  -> req/s, ratio to 1.

No CXone is needed: nothing here calls it. Target: the token endpoint at >= 0.5 of `/healthz`.
Prints each run and the medians; `--json PATH` writes them too.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from processes import check_serving, descendants, tree_cpu_seconds
from reply_callback import loadgen
from stack import add_server_options, bench_stack, ratio, summarize

TARGET_RATIO = 0.5


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    with ExitStack() as cleanup:
        stack = bench_stack(args, cleanup)  # no emulator: nothing here calls CXone
        client = stack.byoc("clients", "create")
        server = stack.serve()
        stack.vacuum()
        basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode())
        common = {
            "host": "127.0.0.1",
            "port": stack.port,
            "mode": "closed",
            "connections": args.connections,
            "duration": args.duration,
            "warmup": args.warmup,
        }
        healthz = loadgen({**common, "method": "GET", "path": "/healthz"})
        cpu_before = tree_cpu_seconds(server.pid)
        token = loadgen(
            {
                **common,
                "method": "POST",
                "path": "/integration/box/1.0/token",
                "headers": {
                    "Authorization": "Basic " + basic.decode(),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                "body": "grant_type=client_credentials",
            }
        )
        cpu = tree_cpu_seconds(server.pid) - cpu_before
        processes = len(descendants(server.pid))
        check_serving(server, stack.work / "byoc.log")
        if args.keep:
            print(f"data and logs kept in {stack.work}")
    return {
        "run": run,
        "healthz_rps": healthz["throughput"],
        "token_rps": token["throughput"],
        "ratio": ratio(token["throughput"], healthz["throughput"]),
        "token_p99_ms": token["latency_ms"]["p99"],
        "token_statuses": token["statuses"],
        "errors": healthz["errors"] + token["errors"],
        "byoc_cpu_ms_per_token": 1000 * cpu / max(token["ok_total"], 1),
        "byoc_processes": processes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0, help="each phase (s)")
    parser.add_argument("--warmup", type=float, default=1.0)
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "database": "postgresql" if args.database_url else "sqlite",
        "workers": args.workers,
        "runs": [],
    }
    for run in range(1, args.runs + 1):
        record = one_run(args, run)
        results["runs"].append(record)
        print(
            f"run {run}: byoc processes {record['byoc_processes']} | /healthz "
            f"{record['healthz_rps']:.0f} req/s | token "
            f"{record['token_rps']:.0f} req/s (ratio {record['ratio']:.2f}, p99 "
            f"{record['token_p99_ms']:.1f} ms, byoc {record['byoc_cpu_ms_per_token']:.2f} ms "
            f"CPU per token) | statuses {record['token_statuses']} | errors {record['errors']}",
            flush=True,
        )
    medians = summarize(results, ("healthz_rps", "token_rps", "ratio"), "token_endpoint.py")
    results["target_ratio"] = TARGET_RATIO
    results["target_met"] = medians["ratio"] >= TARGET_RATIO
    print(
        f"median of {len(results['runs'])} ({results['database']}, workers "
        f"{args.workers or 'not given'}, {results['runs'][0]['byoc_processes']} byoc processes): "
        f"/healthz {medians['healthz_rps']:.0f} req/s, token "
        f"{medians['token_rps']:.0f} req/s, ratio {medians['ratio']:.2f} (target >= "
        f"{TARGET_RATIO}: {'met' if results['target_met'] else 'MISSED'})"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
