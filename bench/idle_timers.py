"""Benchmark: CPU of an idle `byoc serve` holding 50,000 open conversations with idle timers.

    .venv/bin/python bench/idle_timers.py                  # 3 runs, about 2 minutes

Everything on loopback, bounded in time and count. Prepares two fresh SQLite files with
`byoc db upgrade` and `byoc channels add`: an empty one (the baseline) and one seeded directly,
with SQL matching src/byoc/store/schema.py, with 50,000 customers and their conversations
in state `open`, `idle_deadline` a day ahead (pending, never due during the run) and no CXone
contact yet. Each run starts one `byoc serve` on each file at the same time, lets them settle,
then reads utime + stime of both processes from /proc/PID/stat over 30 s in which nobody sends
anything. Target: the seeded server below 5 % of one core.

No CXone is needed and none is running (nothing idle calls it); both servers point at a port
nobody listens on. `--database-url postgresql://...` gives each server a fresh PostgreSQL
database instead (seeded with the same rows, then VACUUM (ANALYZE)); `--workers N` is passed
on to `byoc serve`, and the CPU and memory are then those of all its processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import postgres_server
from processes import tree_cpu_seconds, tree_rss_kib
from stack import Stack, add_server_options, bench_stack, free_port, summarize

from byoc.ids import new_id

CHANNEL_ID = "chat_bench_timers"
TARGET_PERCENT = 5.0


CUSTOMERS = "INSERT INTO customers (id, channel_id, external_id, created_at) VALUES ({})"
CONVERSATIONS = (
    "INSERT INTO conversations (id, channel_id, customer_id, state, origin, next_seq,"
    " last_customer_activity_at, created_at, idle_deadline) VALUES ({})"
)
PENDING_TIMERS = (
    "SELECT COUNT(*) FROM conversations WHERE state = 'open'"
    " AND (idle_deadline IS NOT NULL OR countdown_deadline IS NOT NULL)"
)


def seed(stack: Stack, count: int) -> float:
    """`count` customers, each with one open conversation whose idle timer is pending."""
    started = time.perf_counter()
    now = int(time.time() * 1000)
    deadline = now + 24 * 3600 * 1000
    customers = []
    conversations = []
    for i in range(count):
        customer_id = new_id("cus")
        customers.append((customer_id, CHANNEL_ID, f"bench-visitor-{i}", now))
        conversations.append(
            (new_id("thr"), CHANNEL_ID, customer_id, "open", "customer", 1, now, now, deadline)
        )
    if stack.database_url is None:
        with sqlite3.connect(stack.db_path) as conn:
            conn.executemany(CUSTOMERS.format(", ".join("?" * 4)), customers)
            conn.executemany(CONVERSATIONS.format(", ".join("?" * 9)), conversations)
    else:
        asyncio.run(seed_postgres(stack.database_url, customers, conversations))
        stack.vacuum()
    return time.perf_counter() - started


def placeholders(count: int) -> str:
    return ", ".join(f"${i}" for i in range(1, count + 1))


async def seed_postgres(
    url: str, customers: list[tuple[Any, ...]], conversations: list[tuple[Any, ...]]
) -> None:
    conn = await asyncpg.connect(postgres_server.driver_url(url))
    try:
        async with conn.transaction():
            await conn.executemany(CUSTOMERS.format(placeholders(4)), customers)
            await conn.executemany(CONVERSATIONS.format(placeholders(9)), conversations)
    finally:
        await conn.close()


async def count_postgres(url: str) -> int:
    conn = await asyncpg.connect(postgres_server.driver_url(url))
    try:
        return int(await conn.fetchval(PENDING_TIMERS))
    finally:
        await conn.close()


def pending_timers(stack: Stack) -> int:
    """Open conversations with a timer, read from the store itself (read-only)."""
    if stack.database_url is not None:
        return asyncio.run(count_postgres(stack.database_url))
    with sqlite3.connect(f"file:{stack.db_path}?mode=ro", uri=True) as conn:
        row = conn.execute(PENDING_TIMERS).fetchone()
    return int(row[0])


def one_run(args: argparse.Namespace, run: int, stacks: dict[str, Stack]) -> dict[str, Any]:
    with ExitStack() as cleanup:
        servers, logs = {}, {name: f"byoc-{name}-run{run}.log" for name in stacks}
        for name, stack in stacks.items():
            stack.cleanup = cleanup  # the processes end with the run, the files stay
            servers[name] = stack.start_server(logs[name])
        for name, stack in stacks.items():
            stack.wait_server(servers[name], logs[name])
        time.sleep(args.settle)
        timers = {name: pending_timers(stack) for name, stack in stacks.items()}
        start = {name: tree_cpu_seconds(p.pid) for name, p in servers.items()}
        began = time.monotonic()
        time.sleep(args.duration)
        elapsed = time.monotonic() - began
        end = {name: tree_cpu_seconds(p.pid) for name, p in servers.items()}
        rss = {name: tree_rss_kib(p.pid) / 1024 for name, p in servers.items()}
        for name, process in servers.items():
            if process.poll() is not None:
                raise SystemExit(f"byoc serve ({name}) exited early")
    percent = {name: 100 * (end[name] - start[name]) / elapsed for name in servers}
    return {
        "run": run,
        "seconds": elapsed,
        "cpu_percent_seeded": percent["seeded"],
        "cpu_percent_empty": percent["empty"],
        "difference_points": percent["seeded"] - percent["empty"],
        "ratio": percent["seeded"] / percent["empty"] if percent["empty"] else float("inf"),
        "pending_timers_seeded": timers["seeded"],
        "pending_timers_empty": timers["empty"],
        "rss_seeded_mib": rss["seeded"],
        "rss_empty_mib": rss["empty"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=50_000)
    parser.add_argument("--duration", type=float, default=30.0, help="measured idle seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after start-up")
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()

    results: dict[str, Any] = {"runs": []}
    with ExitStack() as files:
        unused = free_port()  # idle servers never call CXone; nothing listens here
        stacks = {
            name: bench_stack(args, files, emulator_port=unused) for name in ("empty", "seeded")
        }
        for stack in stacks.values():
            stack.add_channel(CHANNEL_ID, "--adapter", "webchat", "--allowed-origin", "*")
        seconds = seed(stacks["seeded"], args.conversations)
        print(f"seeded {args.conversations} open conversations in {seconds:.1f} s", flush=True)
        for run in range(1, args.runs + 1):
            record = one_run(args, run, stacks)
            results["runs"].append(record)
            print(
                f"run {run}: {record['pending_timers_seeded']:.0f} pending timers: CPU "
                f"{record['cpu_percent_seeded']:.2f} % of a core vs empty server "
                f"{record['cpu_percent_empty']:.2f} % (x{record['ratio']:.1f}) over "
                f"{record['seconds']:.0f} s | RSS {record['rss_seeded_mib']:.0f} MiB vs "
                f"{record['rss_empty_mib']:.0f} MiB",
                flush=True,
            )
        if args.keep:
            print("data and logs kept in " + ", ".join(str(s.work) for s in stacks.values()))

    runs = results["runs"]
    keys = ("cpu_percent_seeded", "cpu_percent_empty", "difference_points", "ratio")
    medians = summarize(results, keys, "idle_timers.py")
    results["max_cpu_percent_seeded"] = max(r["cpu_percent_seeded"] for r in runs)
    results["target_percent"] = TARGET_PERCENT
    results["target_met"] = medians["cpu_percent_seeded"] < TARGET_PERCENT
    print(
        f"median of {len(runs)}: {args.conversations} open conversations "
        f"{medians['cpu_percent_seeded']:.2f} % of a core (target < {TARGET_PERCENT:g}: "
        f"{'met' if results['target_met'] else 'MISSED'}), empty server "
        f"{medians['cpu_percent_empty']:.2f} %, x{medians['ratio']:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
