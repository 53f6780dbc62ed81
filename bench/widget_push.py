"""Benchmark: agent reply -> shown on the widget socket.

    .venv/bin/python bench/widget_push.py                  # 3 runs, about 1-2 minutes
    .venv/bin/python bench/widget_push.py --via box        # replies straight to the box

Everything on loopback, bounded in time and count. Each run starts, as separate processes: the
CXone emulator (`cxone-emulator serve`) and `byoc serve` on a fresh SQLite file with one web
chat channel; then, in a client process of its own (this file with --clients), it:

  1. opens 200 widget sockets (protocol-level clients, docs/webchat-protocol.md), each an
     anonymous visitor that writes one message, so each has its own conversation, and waits
     until CXone (the emulator) has a contact for every one of them;
  2. sends agent replies open loop at 200/s for 10 s (plus 1 s warm-up, not counted), each to
     the next conversation in turn, through the emulator's agent API
     `POST /emulator/contacts/{id}/reply` (the emulator then calls the middleware's box, as
     CXone does) or, with `--via box`, straight to the middleware's
     `POST /integration/box/2.0/channel/{id}/outbound` with a bearer token from
     `/integration/box/1.0/token`;
  3. latency = from the reply's *scheduled* send time to the `message` frame carrying it on
     that conversation's socket (one process, one clock); a frame on the wrong socket is an
     error, a reply not shown `--drain-limit` s after the last send counts as infinitely slow.

Before that, the baseline: GET /healthz open loop at the same rate (bench/loadgen.py). The CPU
of the middleware and of the emulator over the client process's life (set-up included) is
reported too, in % of one core (byoc: all its processes). `--database-url postgresql://...`
runs each run on a fresh PostgreSQL database (the widget bus then goes through LISTEN/NOTIFY);
`--workers N` is passed on to `byoc serve`: with several workers a reply is often taken in by
a worker other than the one holding the widget's socket, and reaches it through NOTIFY.
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
from processes import check_serving, process_cpu_seconds, tree_cpu_seconds
from reply_callback import loadgen, profile_server
from stack import BRAND_ID, add_server_options, bench_stack, python_child, summarize
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

CHANNEL_ID = "chat_bench_web"
ORIGIN = "http://bench.example"
TARGET_P99_MS = 30.0


# --- the client process --------------------------------------------------------------------


class Widgets:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.sockets: list[ClientConnection] = []
        self.threads: list[str] = []
        self.shown: dict[int, float] = {}
        self.misrouted = 0
        self.readers: list[asyncio.Task[None]] = []

    async def open_one(self, index: int) -> None:
        url = f"ws://127.0.0.1:{self.spec['port']}/webchat/v1/ws"
        ws = await connect(url, origin=Origin(ORIGIN), max_queue=None)
        hello = {
            "type": "hello",
            "channel": self.spec["channel"],
            "visitorId": secrets.token_hex(16),
        }
        await ws.send(json.dumps(hello))
        welcome = json.loads(await ws.recv())
        if welcome["type"] != "welcome":
            raise RuntimeError(f"widget refused: {welcome}")
        await ws.send(json.dumps({"type": "message", "clientId": "c-1", "text": "hello"}))
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ack":
                self.threads[index] = frame["message"]["threadId"]
                break
        self.sockets[index] = ws

    async def read(self, index: int, ws: ClientConnection) -> None:
        clock = time.perf_counter
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "message" and frame["message"]["sender"] == "agent":
                at = clock()
                text = frame["message"]["text"]
                if text.startswith("bench-"):
                    seq = int(text[6:])
                    if seq % len(self.sockets) != index:
                        self.misrouted += 1
                    self.shown.setdefault(seq, at)
            elif kind == "ping":
                await ws.send('{"type":"pong"}')

    async def open(self) -> None:
        count = self.spec["widgets"]
        self.sockets = [None] * count  # type: ignore[list-item]
        self.threads = [""] * count
        gate = asyncio.Semaphore(50)

        async def gated(index: int) -> None:
            async with gate:
                await self.open_one(index)

        await asyncio.gather(*(gated(i) for i in range(count)))
        self.readers = [asyncio.create_task(self.read(i, ws)) for i, ws in enumerate(self.sockets)]

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def contacts_by_thread(spec: dict[str, Any], threads: list[str]) -> dict[str, str]:
    """The emulator's contact id of each conversation, once CXone has all of them."""
    deadline = time.monotonic() + 60
    wanted = set(threads)
    async with httpx.AsyncClient(base_url=spec["emulator"], timeout=10) as http:
        while True:
            data = (
                await http.get("/emulator/contacts", params={"channelId": spec["channel"]})
            ).json()["data"]
            found = {
                c["threadIdOnExternalPlatform"]: c["id"]
                for c in data
                if c["threadIdOnExternalPlatform"] in wanted
            }
            if len(found) == len(wanted):
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(found)}/{len(wanted)} contacts in CXone after 60 s")
            await asyncio.sleep(0.2)


def reply_request(spec: dict[str, Any], seq: int, thread: str, contact: str) -> bytes:
    text = f"bench-{seq}"
    if spec["via"] == "box":
        host = f"127.0.0.1:{spec['port']}"
        path = f"/integration/box/2.0/channel/{spec['channel']}/outbound"
        body = {
            "brand": {"id": BRAND_ID},
            "thread": {"idOnExternalPlatform": thread},
            "messageId": f"de-{spec['tag']}-{seq}",
            "messageContent": {"type": "TEXT", "payload": {"text": text}},
            "authorUser": {"id": 7, "firstName": "Agent", "surname": "Smith"},
        }
        headers = {"Authorization": f"Bearer {spec['token']}"}
    else:
        host = spec["emulator"].removeprefix("http://")
        path = f"/emulator/contacts/{contact}/reply"
        body = {"text": text, "agent": {"firstName": "Agent"}}
        headers = {}
    raw = json.dumps(body, separators=(",", ":")).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(raw)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


async def clients(spec: dict[str, Any]) -> dict[str, Any]:
    widgets = Widgets(spec)
    opened_at = time.perf_counter()
    await widgets.open()
    contacts = await contacts_by_thread(spec, widgets.threads)
    setup_s = time.perf_counter() - opened_at
    count = len(widgets.sockets)
    total = int((spec["warmup"] + spec["duration"]) * spec["rate"])
    requests = [
        reply_request(
            spec, seq, widgets.threads[seq % count], contacts[widgets.threads[seq % count]]
        )
        for seq in range(total)
    ]
    target_host, target_port = (
        ("127.0.0.1", spec["port"])
        if spec["via"] == "box"
        else ("127.0.0.1", int(spec["emulator"].rsplit(":", 1)[1]))
    )
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    for _ in range(16):
        idle.put_nowait(await Connection.open(target_host, target_port))
        opened += 1
    statuses: dict[str, int] = {}
    errors = 0
    tasks: set[asyncio.Task[None]] = set()
    clock = time.perf_counter
    scheduled: dict[int, float] = {}
    begin = clock() + 0.05
    lag_max = 0.0

    async def one(seq: int) -> None:
        nonlocal opened, errors
        if idle.empty() and opened < 512:
            opened += 1
            conn = await Connection.open(target_host, target_port)
        else:
            conn = await idle.get()
        try:
            status = await conn.exchange(requests[seq])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.close()
            opened -= 1
            return
        idle.put_nowait(conn)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status >= 400:
            errors += 1

    for seq in range(total):
        at = begin + seq / spec["rate"]
        scheduled[seq] = at
        delay = at - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag_max = max(lag_max, -delay)
        task = asyncio.create_task(one(seq))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    last = begin + (total - 1) / spec["rate"]
    warmup_count = int(spec["warmup"] * spec["rate"])
    measured = range(warmup_count, total)
    while clock() < last + spec["drain_limit"]:
        if all(seq in widgets.shown for seq in measured):
            break
        await asyncio.sleep(0.05)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
    latencies = sorted(
        (widgets.shown[seq] - scheduled[seq]) * 1000 if seq in widgets.shown else float("inf")
        for seq in measured
    )
    await widgets.close()
    while not idle.empty():
        idle.get_nowait().close()
    return {
        "replies": len(latencies),
        "shown": sum(1 for v in latencies if v != float("inf")),
        "misrouted": widgets.misrouted,
        "errors": errors,
        "statuses": statuses,
        "p50_ms": percentile(latencies, 0.5),
        "p90_ms": percentile(latencies, 0.9),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "setup_s": setup_s,
        "dispatch_lag_max_ms": lag_max * 1000,
        "connections_opened": opened,
    }


def clients_main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop

        result = uvloop.run(clients(spec))
    except ImportError:
        result = asyncio.run(clients(spec))
    print(json.dumps(result))


# --- the orchestration ---------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--widgets", type=int, default=200, help="open sockets/conversations")
    parser.add_argument("--rate", type=float, default=200.0, help="agent replies/s")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--baseline-duration", type=float, default=3.0)
    parser.add_argument("--drain-limit", type=float, default=20.0)
    parser.add_argument("--via", choices=("emulator", "box"), default="emulator")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of byoc in run 1")
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    results: dict[str, Any] = {"runs": []}
    for run in range(1, args.runs + 1):
        # A fresh middleware, store and emulator per run: nothing accumulates across runs.
        with ExitStack() as cleanup:
            stack = bench_stack(args, cleanup)
            client = stack.byoc("clients", "create")
            stack.add_channel(CHANNEL_ID, "--adapter", "webchat", "--allowed-origin", ORIGIN)
            emulator = stack.start_emulator(client, [CHANNEL_ID])
            server = stack.serve()
            with httpx.Client(base_url=stack.base, timeout=10) as http:
                token = http.post(
                    "/integration/box/1.0/token",
                    data={"grant_type": "client_credentials"},
                    auth=(client["client_id"], client["client_secret"]),
                ).json()["access_token"]
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
                "emulator": stack.emulator,
                "channel": CHANNEL_ID,
                "widgets": args.widgets,
                "rate": args.rate,
                "duration": args.duration,
                "warmup": args.warmup,
                "drain_limit": args.drain_limit,
                "via": args.via,
                "token": token,
                "tag": f"r{run}-{secrets.token_hex(3)}",
            }
            cpu_before = {
                "byoc": tree_cpu_seconds(server.pid),
                "emulator": process_cpu_seconds(emulator.pid),
            }
            profiler = None
            if args.profile and run == 1:
                # From the start of the client process: ~3 s of set-up, then the replies.
                profiler = profile_server(server.pid, args.duration + 4, args.profile)
            began = time.monotonic()
            done = subprocess.run(
                python_child("widget_push.py", "--clients"),
                input=json.dumps(spec).encode(),
                capture_output=True,
                timeout=args.duration + args.warmup + args.drain_limit + 120,
            )
            elapsed = time.monotonic() - began
            if profiler is not None:
                profiler.wait(timeout=60)
            cpu = {
                "byoc_cpu_percent": 100
                * (tree_cpu_seconds(server.pid) - cpu_before["byoc"])
                / elapsed,
                "emulator_cpu_percent": 100
                * (process_cpu_seconds(emulator.pid) - cpu_before["emulator"])
                / elapsed,
            }
            if done.returncode != 0:
                raise SystemExit(f"client process failed:\n{done.stderr.decode()[-3000:]}")
            check_serving(server, stack.work / "byoc.log")
            if args.keep:
                print(f"data and logs kept in {stack.work}")
        record = {
            "run": run,
            **json.loads(done.stdout),
            **cpu,
            "healthz_p50_ms": baseline["latency_ms"]["p50"],
            "healthz_p99_ms": baseline["latency_ms"]["p99"],
        }
        record["ratio_p99"] = record["p99_ms"] / record["healthz_p99_ms"]
        results["runs"].append(record)
        print(
            f"run {run}: {record['shown']}/{record['replies']} shown "
            f"({record['misrouted']} misrouted, {record['errors']} errors) | p50 "
            f"{record['p50_ms']:.1f} ms, p90 {record['p90_ms']:.1f} ms, p99 "
            f"{record['p99_ms']:.1f} ms, max {record['max_ms']:.1f} ms | /healthz p99 "
            f"{record['healthz_p99_ms']:.1f} ms (ratio {record['ratio_p99']:.1f}) | "
            f"CPU byoc {record['byoc_cpu_percent']:.0f} %, emulator "
            f"{record['emulator_cpu_percent']:.0f} % | set-up {record['setup_s']:.1f} s | "
            f"statuses {record['statuses']}",
            flush=True,
        )

    runs = results["runs"]
    keys = ("p50_ms", "p99_ms", "healthz_p99_ms", "ratio_p99")
    medians = summarize(results, keys, "widget_push.py")
    results["target_p99_ms"] = TARGET_P99_MS
    results["target_met"] = medians["p99_ms"] <= TARGET_P99_MS
    print(
        f"median of {len(runs)} ({args.widgets} widgets, {args.rate:g} replies/s via "
        f"{args.via}): p50 {medians['p50_ms']:.1f} ms, p99 {medians['p99_ms']:.1f} ms (target <= "
        f"{TARGET_P99_MS:g}: {'met' if results['target_met'] else 'MISSED'}); /healthz p99 "
        f"{medians['healthz_p99_ms']:.1f} ms, ratio {medians['ratio_p99']:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--clients"]:
        clients_main()
        sys.exit(0)
    sys.exit(main())
