"""Benchmark: the sustained reply rate, accepted and delivered with the outbox bounded.

    .venv/bin/python bench/sustained.py                                   # 3 runs, ~6 minutes
    .venv/bin/python bench/sustained.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/sustained.py --database-url ... --workers 2
    .venv/bin/python bench/sustained.py --conversations 1                 # one lane

Everything on loopback, bounded in time and count. Each run starts, as separate processes, the
CXone emulator, the webhook receiver (bench/receiver.py, which counts what it receives) and
`byoc serve` (a fresh SQLite file, or a fresh PostgreSQL database next to `--database-url`;
`--workers N` passed on when given), opens `--conversations` conversations (one customer
message each, delivered to CXone before anything is measured), runs VACUUM (ANALYZE) on
PostgreSQL, takes a bearer token, then drives the server with the load generator as yet
another process (bench/loadgen.py), every reply to the next conversation in turn:

  1. `/healthz` saturated: 64 connections, closed loop               -> baseline req/s
  2. reply callbacks saturated: 64 connections, closed loop, 10 s    -> intake req/s; then
     the backlog at the end of the phase ("grew to N in 10 s") and the time it took to drain
  3. the sustained rate: open-loop steps (`--step-duration` s each) at an offered rate,
     bisecting between 0 and 1.1 x intake, the first at `--start-fraction` x intake. A step
     passes when every reply is answered 200 in time (none unanswered, p99 from its scheduled
     send time <= `--accept-p99-ms`) and the backlog grew by at most `--backlog-seconds` (1 s)
     of the offered traffic by the end of the step. Sustained = the highest passing rate;
     0 when none passed (the backlog grew at every rate tried, and the output says so).

Backlog = replies answered 200 minus webhook POSTs the receiver got: exact, from both ends. The
outbox's pending rows from `/metrics` (`byoc_outbox_rows{state="pending"}`) are reported beside
it. Every phase starts with the backlog drained (bounded by `--drain-limit`).

Work per delivered reply, for the intake phase and for the highest passing step (from the
start of the phase until its backlog drained, divided by the replies delivered meanwhile):
CPU of byoc's whole process tree (the server and its workers, /proc/PID/stat) and, on
PostgreSQL, of the run database's backends and of the shared writer processes (walwriter,
checkpointer, background writer), WAL bytes and write transactions (xids assigned; both
server-wide, so meaningful on a quiet machine), and the connections the webhook receiver
accepted meanwhile (connections kept alive: a handful, not one per reply).
bench/scale-model.md turns these into capacity. Prints each run and the medians; `--json PATH`
writes everything.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from processes import check_serving
from reply_callback import free_port, loadgen, pending_rows, reply_body, start, stop, wait_drained
from stack import (
    BRAND_ID,
    Stack,
    add_server_options,
    bench_stack,
    python_child,
    ratio,
    summarize,
    work_per,
    work_reading,
)

# Sustained rate as a fraction of /healthz in the same run, one process.
TARGET_RATIO = {"sqlite": 0.30, "postgresql": 0.25}


@dataclass
class Target:
    """The stack under test and what has been accepted from it so far."""

    stack: Stack
    receiver: httpx.Client
    channel_id: str
    token: str
    threads: list[str]
    connections: int
    accepted: int = 0
    delivered_at_start: int = 0

    def delivered(self) -> int:
        return int(self.receiver.get("/count").json()["received"]) - self.delivered_at_start

    def webhook_connections(self) -> int:
        """Connections the receiver accepted so far (keep-alive: few)."""
        return int(self.receiver.get("/count").json()["connections"])

    def backlog(self) -> int:
        return max(0, self.accepted - self.delivered())

    def drain(self, limit: float) -> tuple[float, int]:
        """Wait until every accepted reply was delivered (at most `limit` s): (seconds, left)."""
        started = time.monotonic()
        while (left := self.backlog()) > 0 and time.monotonic() - started < limit:
            time.sleep(0.1)
        return time.monotonic() - started, left

    def reading(self) -> dict[str, Any]:
        return {
            **work_reading(self.stack),
            "delivered": self.delivered(),
            "webhook_connections": self.webhook_connections(),
        }

    def replies(self, tag: str, **spec: Any) -> dict[str, Any]:
        """One load generator phase of reply callbacks over the conversations."""
        result = loadgen(
            {
                "host": "127.0.0.1",
                "port": self.stack.port,
                "method": "POST",
                "path": f"/integration/box/2.0/channel/{self.channel_id}/outbound",
                "headers": {
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
                "body": reply_body("__VAR__", BRAND_ID, f"{tag}-{secrets.token_hex(3)}"),
                "variants": self.threads,
                "connections": self.connections,
                **spec,
            }
        )
        self.accepted += int(result["ok_total"])
        return result


def work_per_reply(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What one delivered reply cost between two readings."""
    delivered = after["delivered"] - before["delivered"]
    opened = after["webhook_connections"] - before["webhook_connections"]
    return {
        "delivered": delivered,
        "webhook_connections_opened": opened,
        **work_per(before, after, delivered, "reply"),
    }


def saturated(args: argparse.Namespace, target: Target, run: int) -> dict[str, Any]:
    """Phases 1 and 2: /healthz and reply intake, closed loop; the backlog intake leaves."""
    common = {"host": "127.0.0.1", "port": target.stack.port, "warmup": args.warmup}
    healthz = loadgen(
        {
            **common,
            "mode": "closed",
            "method": "GET",
            "path": "/healthz",
            "connections": args.connections,
            "duration": args.duration,
        }
    )
    before = target.reading()
    intake = target.replies(
        f"r{run}-intake", mode="closed", warmup=args.warmup, duration=args.intake_duration
    )
    backlog = target.backlog()
    pending = pending_rows(target.stack.base)
    drain_s, left = target.drain(args.drain_limit)
    work = work_per_reply(before, target.reading())
    return {
        "healthz_rps": healthz["throughput"],
        "intake_rps": intake["throughput"],
        "intake_ratio": ratio(intake["throughput"], healthz["throughput"]),
        "intake_p99_ms": intake["latency_ms"]["p99"],
        "intake_accepted": intake["ok_total"],
        "intake_errors": intake["errors"],
        "intake_backlog": backlog,
        "intake_pending_metrics": pending,
        "intake_drain_s": drain_s,
        "intake_left_after_drain": left,
        "intake_work": work,
        "detail": {"healthz": healthz, "intake": intake},
    }


def step(args: argparse.Namespace, target: Target, run: int, rate: float) -> dict[str, Any]:
    """One open-loop step at `rate`; whether it was accepted and delivered, and at what cost."""
    _, left_before = target.drain(args.drain_limit)
    before = target.reading()
    result = target.replies(
        f"r{run}-s{rate:.0f}", mode="open", rate=rate, warmup=0.0, duration=args.step_duration
    )
    backlog = target.backlog()
    pending = pending_rows(target.stack.base)
    allowed = rate * args.backlog_seconds
    p99 = result["latency_ms"]["p99"]
    accepted = result["errors"] == 0 and result["unfinished"] == 0 and p99 <= args.accept_p99_ms
    bounded = backlog - left_before <= allowed
    drain_s, left = target.drain(args.drain_limit)
    return {
        "rate": rate,
        "passed": accepted and bounded,
        "accepted_in_time": accepted,
        "backlog_bounded": bounded,
        "requests": result["requests"],
        "ok": result["ok_total"],
        "errors": result["errors"],
        "unfinished": result["unfinished"],
        "p50_ms": result["latency_ms"]["p50"],
        "p99_ms": p99,
        "backlog_at_start": left_before,
        "backlog": backlog,
        "backlog_allowed": allowed,
        "pending_metrics": pending,
        "drain_s": drain_s,
        "left_after_drain": left,
        "dispatch_lag_max_ms": result["dispatch_lag_max_ms"],
        "work": work_per_reply(before, target.reading()),
    }


def search(args: argparse.Namespace, target: Target, run: int, intake: float) -> dict[str, Any]:
    """Bisect the offered rate for the highest step that passes."""
    low, high = 0.0, 1.1 * intake
    rate = max(1.0, round(args.start_fraction * intake))
    steps: list[dict[str, Any]] = []
    for _ in range(args.steps):
        result = step(args, target, run, rate)
        steps.append(result)
        verdict = "passed" if result["passed"] else "FAILED"
        print(
            f"  step {rate:7.0f} req/s: {verdict} | ok {result['ok']}/{result['requests']}, "
            f"p99 {result['p99_ms']:.1f} ms | backlog {result['backlog']} (allowed "
            f"{result['backlog_allowed']:.0f}; pending {result['pending_metrics']:.0f} by "
            f"/metrics), drained in {result['drain_s']:.1f} s",
            flush=True,
        )
        if result["passed"]:
            low = rate
        else:
            high = rate
        if high - low <= args.resolution * high:
            break
        rate = max(1.0, round((low + high) / 2))
        if rate in (low, high):
            break
    best = max((s for s in steps if s["passed"]), key=lambda s: s["rate"], default=None)
    return {
        "sustained_rps": best["rate"] if best else 0.0,
        "lowest_failed_rps": min((s["rate"] for s in steps if not s["passed"]), default=None),
        "sustained_work": best["work"] if best else None,
        "steps": steps,
    }


def prepare(args: argparse.Namespace, cleanup: ExitStack, run: int) -> Target:
    stack = bench_stack(args, cleanup)
    client = stack.byoc("clients", "create")
    receiver_port = free_port()
    receiver_process = start(
        python_child("receiver.py", str(receiver_port)), stack.env, stack.work / "receiver.log"
    )
    cleanup.callback(stop, receiver_process)
    channel_id = f"chat_bench_sus_{secrets.token_hex(3)}"
    channel = stack.add_channel(
        channel_id, "--webhook-url", f"http://127.0.0.1:{receiver_port}/webhook"
    )
    stack.start_emulator(client, [channel_id])
    server = stack.serve()
    cleanup.callback(check_serving, server, stack.work / "byoc.log")
    http = cleanup.enter_context(httpx.Client(base_url=stack.base, timeout=10))
    receiver = cleanup.enter_context(
        httpx.Client(base_url=f"http://127.0.0.1:{receiver_port}", timeout=10)
    )
    threads = [
        stack.customer_message(
            http,
            channel_id,
            channel["secret"],
            {"customer": {"id": f"bench-customer-{run}-{i}"}, "text": "hello"},
        )["threadId"]
        for i in range(args.conversations)
    ]
    wait_drained(stack.base, 60)  # the opening messages reached CXone
    stack.vacuum()
    target = Target(
        stack=stack,
        receiver=receiver,
        channel_id=channel_id,
        token=stack.box_token(http, client),
        threads=threads,
        connections=args.connections,
    )
    target.delivered_at_start = target.delivered()
    return target


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    with ExitStack() as cleanup:
        target = prepare(args, cleanup, run)
        record: dict[str, Any] = {"run": run, **saturated(args, target, run)}
        grew = record["intake_backlog"]
        print(
            f"run {run}: byoc processes {record['intake_work']['byoc_processes']} | /healthz "
            f"{record['healthz_rps']:.0f} req/s | intake "
            f"{record['intake_rps']:.0f} req/s (ratio {record['intake_ratio']:.2f}) | backlog "
            f"grew to {grew} in {args.warmup + args.intake_duration:g} s (pending "
            f"{record['intake_pending_metrics']:.0f} by /metrics), "
            + (
                f"drained in {record['intake_drain_s']:.1f} s"
                if record["intake_left_after_drain"] == 0
                else f"NOT drained after {record['intake_drain_s']:.0f} s "
                f"({record['intake_left_after_drain']} left)"
            ),
            flush=True,
        )
        record |= search(args, target, run, record["intake_rps"])
        if args.keep:
            print(f"data and logs kept in {target.stack.work}")
    record["sustained_ratio"] = ratio(record["sustained_rps"], record["healthz_rps"])
    record["backlog_grows_at_intake"] = (
        record["intake_backlog"] > record["intake_rps"] * args.backlog_seconds
    )
    work = record["sustained_work"] or {}
    record["byoc_cpu_ms_per_reply"] = work.get("byoc_cpu_ms_per_reply", float("nan"))
    record["pg_cpu_ms_per_reply"] = work.get("pg_cpu_ms_per_reply", float("nan"))
    if record["sustained_rps"]:
        print(
            f"run {run}: sustained {record['sustained_rps']:.0f} req/s (ratio "
            f"{record['sustained_ratio']:.2f} of /healthz); byoc "
            f"{record['byoc_cpu_ms_per_reply']:.2f} ms CPU per delivered reply"
            + (
                f", PostgreSQL {record['pg_cpu_ms_per_reply']:.2f} ms, "
                f"{work['wal_bytes_per_reply']:.0f} WAL bytes"
                if "wal_bytes_per_reply" in work
                else ""
            ),
            flush=True,
        )
    else:
        print(
            f"run {run}: no rate tried kept the backlog bounded: the backlog grew even at "
            f"{record['lowest_failed_rps']:.0f} req/s",
            flush=True,
        )
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0, help="/healthz phase (s)")
    parser.add_argument("--intake-duration", type=float, default=10.0, help="intake phase (s)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--step-duration", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=5, help="at most this many steps")
    parser.add_argument("--start-fraction", type=float, default=0.5, help="first step / intake")
    parser.add_argument("--resolution", type=float, default=0.05, help="stop when this close")
    parser.add_argument("--backlog-seconds", type=float, default=1.0)
    parser.add_argument("--accept-p99-ms", type=float, default=1000.0)
    parser.add_argument("--drain-limit", type=float, default=120.0)
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    database = "postgresql" if args.database_url else "sqlite"
    results: dict[str, Any] = {"database": database, "workers": args.workers, "runs": []}
    for run in range(1, args.runs + 1):
        results["runs"].append(one_run(args, run))
    keys = ["healthz_rps", "intake_rps", "intake_ratio", "sustained_rps", "sustained_ratio"]
    keys += ["intake_backlog", "intake_drain_s", "byoc_cpu_ms_per_reply", "pg_cpu_ms_per_reply"]
    medians = summarize(results, keys, "sustained.py")
    target = TARGET_RATIO[database]
    results["target_ratio"] = target
    results["target_met"] = medians["sustained_ratio"] >= target
    grows = sum(1 for r in results["runs"] if r["backlog_grows_at_intake"])
    processes = results["runs"][0]["intake_work"]["byoc_processes"]
    print(
        f"median of {len(results['runs'])} ({database}, --workers {args.workers or 'not given'}"
        f" ({processes} byoc processes), "
        f"{args.conversations} conversations): /healthz {medians['healthz_rps']:.0f} req/s, "
        f"intake {medians['intake_rps']:.0f} req/s ({medians['intake_ratio']:.2f}), sustained "
        f"{medians['sustained_rps']:.0f} req/s ({medians['sustained_ratio']:.2f}; target >= "
        f"{target:.2f} for one process: {'met' if results['target_met'] else 'MISSED'}); "
        f"backlog grew at intake rate in {grows} of {len(results['runs'])} runs (median "
        f"{medians['intake_backlog']:.0f}, drained in {medians['intake_drain_s']:.1f} s); "
        f"CPU per delivered reply: byoc {medians['byoc_cpu_ms_per_reply']:.2f} ms"
        + (f", PostgreSQL {medians['pg_cpu_ms_per_reply']:.2f} ms" if args.database_url else "")
    )
    results["spread"] = {
        key: [r[key] for r in results["runs"]] for key in ("sustained_rps", "intake_rps")
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
