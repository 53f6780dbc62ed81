"""Benchmark: customer message -> the CXone emulator receives the create-message call.

    .venv/bin/python bench/customer_message.py           # 3 runs, about 2-3 minutes

Everything on loopback, bounded in time and count. Each run starts, as separate processes: the
CXone emulator wrapped with a receipt clock (bench/timed_emulator.py), a webhook receiver
(bench/receiver.py) and `byoc serve` on a fresh SQLite file; opens 200 conversations (one
message per customer, each delivered to CXone before the measurement), then:

  1. baseline: GET /healthz open loop at the same rate (bench/loadgen.py)  -> p50 / p99
  2. signed `POST /api/v1/channels/{id}/messages`, open loop at 500 messages/s for 10 s (plus
     1 s warm-up, not counted), each from one of the 200 customers in turn, by a generator
     process (this file with --generate); latency = from the message's *scheduled* send time
     to the emulator's receipt of `POST /channels/{id}/messages` for that message id, both
     read from `time.time()` (one clock for every process on the machine).

No backlog carries over from one run to the next. A message whose create call has not reached
the emulator `--drain-limit` seconds after the last send counts as infinitely slow. The work
per message received by CXone (warm-up included) is reported too, from the generator's start
until the outbox settled: CPU of byoc's process tree and, on PostgreSQL, of the run database's
backends, WAL bytes and write transactions (bench/scale-model.md uses them). Prints each run
and the medians over runs; `--json PATH` writes them too.

`--database-url postgresql://...` runs each run on a fresh PostgreSQL database (VACUUM
(ANALYZE) once the conversations are open); `--workers N` is passed on to `byoc serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from loadgen import Connection, percentile
from processes import check_serving
from reply_callback import free_port, loadgen, profile_server, start, stop, wait_drained
from stack import (
    Stack,
    add_server_options,
    bench_stack,
    python_child,
    summarize,
    work_per,
    work_reading,
)

from byoc.channels.signing import signed_headers

CHANNEL_ID = "chat_bench_msg"
TARGET_P99_MS = 50.0


# --- the generator (its own process) -------------------------------------------------------


async def exchange(conn: Connection, request: bytes) -> tuple[int, bytes]:
    conn.writer.write(request)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await conn.reader.readexactly(length) if length else b""
    return int(head[9:12]), body


def build_requests(spec: dict[str, Any]) -> list[bytes]:
    """Every request of the run, signed in advance (the signature tolerance is minutes)."""
    requests = []
    path = f"/api/v1/channels/{spec['channel']}/messages"
    total = int((spec["warmup"] + spec["duration"]) * spec["rate"])
    for seq in range(total):
        customer = seq % spec["customers"]
        body = json.dumps(
            {
                "id": f"{spec['tag']}-{seq}",
                "customer": {"id": f"bench-customer-{customer}"},
                "text": f"message {seq}",
            },
            separators=(",", ":"),
        ).encode()
        headers = {"Content-Type": "application/json", **signed_headers(spec["secret"], body)}
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{spec['port']}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        requests.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return requests


async def generate(spec: dict[str, Any]) -> dict[str, Any]:
    requests = build_requests(spec)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    for _ in range(16):
        idle.put_nowait(await Connection.open("127.0.0.1", spec["port"]))
        opened += 1
    sent: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    clock = time.perf_counter
    begin = clock() + 0.05
    # Wall time of a perf_counter instant: the emulator stamps receipts with time.time().
    wall_offset = time.time() - clock()
    warmup_count = int(spec["warmup"] * spec["rate"])
    lag_max = 0.0

    async def one(seq: int, record: dict[str, Any]) -> None:
        nonlocal opened
        if idle.empty() and opened < 512:
            opened += 1
            conn = await Connection.open("127.0.0.1", spec["port"])
        else:
            conn = await idle.get()
        try:
            status, body = await exchange(conn, requests[seq])
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn.close()
            opened -= 1
            record["error"] = repr(exc)
        else:
            idle.put_nowait(conn)
            record["status"] = status
            record["acked"] = clock() + wall_offset
            if status == 202:
                record["id"] = json.loads(body)["id"]

    for seq in range(len(requests)):
        scheduled = begin + seq / spec["rate"]
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag_max = max(lag_max, -delay)
        # Recorded at dispatch, so a request still unanswered at the end is counted (as
        # infinitely slow) rather than silently dropped.
        record: dict[str, Any] = {"seq": seq, "scheduled": scheduled + wall_offset}
        if seq >= warmup_count:
            sent.append(record)
        task = asyncio.create_task(one(seq, record))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=30)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    while not idle.empty():
        idle.get_nowait().close()
    return {
        "messages": sent,
        "dispatch_lag_max_ms": lag_max * 1000,
        "connections_opened": opened,
        "last_scheduled": begin + (len(requests) - 1) / spec["rate"] + wall_offset,
    }


def generator_main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop

        result = uvloop.run(generate(spec))
    except ImportError:
        result = asyncio.run(generate(spec))
    Path(spec["out"]).write_text(json.dumps(result))


# --- the orchestration ---------------------------------------------------------------------


def receipts(http: httpx.Client) -> dict[str, float]:
    found: dict[str, float] = http.get("/bench/receipts").json()["receipts"]
    return found


def wait_receipts(http: httpx.Client, ids: set[str], limit: float) -> dict[str, float]:
    deadline = time.monotonic() + limit
    while True:
        found = receipts(http)
        if ids <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def post_signed(http: httpx.Client, secret: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    response = http.post(
        f"/api/v1/channels/{CHANNEL_ID}/messages",
        content=body,
        headers={"Content-Type": "application/json", **signed_headers(secret, body)},
    )
    if response.status_code != 202:
        raise SystemExit(f"customer message answered {response.status_code}: {response.text}")
    accepted: dict[str, Any] = response.json()
    return accepted


def one_run(
    args: argparse.Namespace, run: int, stack: Stack, secret: str, emulator: httpx.Client
) -> dict[str, Any]:
    emulator.delete("/bench/receipts")
    baseline = loadgen(
        {
            "mode": "open",
            "host": "127.0.0.1",
            "port": stack.port,
            "method": "GET",
            "path": "/healthz",
            "rate": args.rate,
            "duration": args.baseline_duration,
            "warmup": args.warmup,
            "connections": 16,
        }
    )
    spec = {
        "port": stack.port,
        "channel": CHANNEL_ID,
        "secret": secret,
        "rate": args.rate,
        "duration": args.duration,
        "warmup": args.warmup,
        "customers": args.customers,
        "tag": f"r{run}-{secrets.token_hex(3)}",
        "out": str(stack.work / f"generated-{run}.json"),
    }
    before = work_reading(stack)
    profiler = None
    if args.profile and run == 1:
        profiler = profile_server(
            stack.server_pid, min(args.duration + args.warmup, 10), args.profile
        )
    subprocess.run(
        python_child("customer_message.py", "--generate"),
        input=json.dumps(spec).encode(),
        capture_output=True,
        timeout=args.duration + args.warmup + 90,
        check=True,
    )
    if profiler is not None:
        profiler.wait(timeout=60)
    generated = json.loads(Path(spec["out"]).read_text())
    messages = generated["messages"]
    ids = {m["id"] for m in messages if "id" in m}
    remaining = max(1.0, generated["last_scheduled"] + args.drain_limit - time.time())
    got = wait_receipts(emulator, ids, remaining)
    wait_drained(stack.base, 10)  # the rows of the delivered messages settled
    work = work_per(before, work_reading(stack), len(got), "message")
    latencies = []
    acks = []
    for message in messages:
        if "acked" in message:
            acks.append((message["acked"] - message["scheduled"]) * 1000)
        at = got.get(message.get("id", ""))
        latencies.append(float("inf") if at is None else (at - message["scheduled"]) * 1000)
    latencies.sort()
    acks.sort()
    reached = sorted(v for v in latencies if v != float("inf"))
    first = min((m["scheduled"] for m in messages), default=0.0)
    window = generated["last_scheduled"] - first
    in_window = sum(1 for at in got.values() if first <= at <= generated["last_scheduled"])
    statuses: dict[str, int] = {}
    for message in messages:
        key = str(message.get("status", "error" if "error" in message else "unanswered"))
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "run": run,
        "messages": len(messages),
        "received": sum(1 for v in latencies if v != float("inf")),
        "statuses": statuses,
        "p50_ms": percentile(latencies, 0.5),
        "p90_ms": percentile(latencies, 0.9),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "received_p50_ms": percentile(reached, 0.5),
        "received_p99_ms": percentile(reached, 0.99),
        "create_calls_per_s_while_sending": in_window / window if window > 0 else 0.0,
        "ack_p50_ms": percentile(acks, 0.5),
        "ack_p99_ms": percentile(acks, 0.99),
        "healthz_p50_ms": baseline["latency_ms"]["p50"],
        "healthz_p99_ms": baseline["latency_ms"]["p99"],
        "ratio_p99": percentile(latencies, 0.99) / baseline["latency_ms"]["p99"],
        "dispatch_lag_max_ms": generated["dispatch_lag_max_ms"],
        "connections_opened": generated["connections_opened"],
        "byoc_cpu_ms_per_message": work["byoc_cpu_ms_per_message"],
        "work": work,
    }


def open_stack(args: argparse.Namespace, cleanup: ExitStack) -> tuple[Stack, str, httpx.Client]:
    """Emulator (with receipt clock), receiver and `byoc serve`, with one open conversation per
    customer that CXone already knows."""
    stack = bench_stack(args, cleanup)
    client = stack.byoc("clients", "create")
    receiver_port = free_port()
    receiver = start(
        python_child("receiver.py", str(receiver_port)), stack.env, stack.work / "receiver.log"
    )
    cleanup.callback(stop, receiver)
    channel = stack.add_channel(
        CHANNEL_ID, "--webhook-url", f"http://127.0.0.1:{receiver_port}/webhook"
    )
    stack.start_emulator(client, [CHANNEL_ID], python_child("timed_emulator.py"))
    server = stack.serve()
    cleanup.callback(check_serving, server, stack.work / "byoc.log")
    http = cleanup.enter_context(httpx.Client(base_url=stack.base, timeout=10))
    emulator = cleanup.enter_context(httpx.Client(base_url=stack.emulator, timeout=10))
    opened = {
        post_signed(
            http, channel["secret"], {"customer": {"id": f"bench-customer-{i}"}, "text": "hello"}
        )["id"]
        for i in range(args.customers)
    }
    if not opened <= wait_receipts(emulator, opened, 60).keys():
        raise SystemExit("the opening messages did not all reach the emulator in 60 s")
    wait_drained(stack.base, 30)
    stack.vacuum()
    return stack, str(channel["secret"]), emulator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0, help="offered messages/s")
    parser.add_argument("--customers", type=int, default=200, help="conversations")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--baseline-duration", type=float, default=3.0)
    parser.add_argument("--drain-limit", type=float, default=20.0)
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of run 1's sending")
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    results: dict[str, Any] = {"runs": []}
    for run in range(1, args.runs + 1):
        with ExitStack() as cleanup:
            # A fresh middleware, store and emulator per run: one run's backlog never slows
            # the next one.
            stack, secret, emulator = open_stack(args, cleanup)
            record = one_run(args, run, stack, secret, emulator)
            if args.keep:
                print(f"data and logs kept in {stack.work}")
        results["runs"].append(record)
        print(
            f"run {run}: {record['received']}/{record['messages']} received | "
            f"p50 {record['p50_ms']:.1f} ms, p90 {record['p90_ms']:.1f} ms, p99 "
            f"{record['p99_ms']:.1f} ms, max {record['max_ms']:.1f} ms | 202 p50 "
            f"{record['ack_p50_ms']:.1f} ms p99 {record['ack_p99_ms']:.1f} ms | /healthz "
            f"p99 {record['healthz_p99_ms']:.1f} ms (ratio {record['ratio_p99']:.1f}) | "
            f"create calls while sending {record['create_calls_per_s_while_sending']:.0f}/s"
            f" | byoc {record['byoc_cpu_ms_per_message']:.2f} ms CPU per message"
            f" | statuses {record['statuses']}",
            flush=True,
        )

    runs = results["runs"]
    keys = (
        "p50_ms",
        "p99_ms",
        "received_p50_ms",
        "received_p99_ms",
        "create_calls_per_s_while_sending",
        "ack_p50_ms",
        "ack_p99_ms",
        "healthz_p99_ms",
        "ratio_p99",
        "byoc_cpu_ms_per_message",
    )
    medians = summarize(results, keys, "customer_message.py")
    results["target_p99_ms"] = TARGET_P99_MS
    results["target_met"] = medians["p99_ms"] <= TARGET_P99_MS
    print(
        f"median of {len(runs)} at {args.rate:g} msg/s over {args.customers} conversations: "
        f"p50 {medians['p50_ms']:.1f} ms, p99 {medians['p99_ms']:.1f} ms (target <= "
        f"{TARGET_P99_MS:g}: {'met' if results['target_met'] else 'MISSED'}); /healthz p99 "
        f"{medians['healthz_p99_ms']:.1f} ms, ratio {medians['ratio_p99']:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--generate"]:
        generator_main()
        sys.exit(0)
    sys.exit(main())
