"""Benchmark: resident memory of one `byoc serve` process holding 10,000 idle widget sockets.

    .venv/bin/python bench/idle_sockets.py                 # 3 runs, about 3 minutes

Everything on loopback, bounded in time and count. Each run starts `byoc serve` on a fresh
SQLite file with one web chat channel (its allowed origin is the one the clients send; no
CXone is needed: an idle widget never calls it), reads the server's VmRSS from
/proc/PID/status once it is up and idle (the baseline), then opens 10,000 widget sockets
from 4 client processes (this file with --clients; protocol-level clients,
docs/webchat-protocol.md, offering permessage-deflate as browsers do unless
`--compression none`): each an anonymous visitor with its own hex visitorId, `hello` ->
`welcome`, then idle (answering the server's JSON `ping` with `pong`). Once every socket is
welcomed (and the server holds that many more file descriptors), it waits a few seconds and
reads VmRSS again. Target: <= 600 MiB with the sockets open.

The open-file limit is raised to what the sockets need (within the hard limit) in this process,
which `byoc serve` and the clients inherit; the limits found are printed. `--database-url
postgresql://...` runs each run on a fresh PostgreSQL database (each `hello` stores a customer
there; the widget bus subscribes through LISTEN/NOTIFY). `--workers N` is passed on to
`byoc serve`: the memory and the file descriptors are then summed over its processes (the
sockets spread over the workers; each process's shared pages count once per process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from processes import check_serving, http_get, tree_fd_count, tree_rss_kib
from prometheus_client.parser import text_string_to_metric_families
from stack import (
    add_server_options,
    bench_stack,
    free_port,
    python_child,
    raise_nofile,
    summarize,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

CHANNEL_ID = "chat_bench_idle"
ORIGIN = "http://bench.example"
TARGET_MIB = 600.0


# --- a client process ----------------------------------------------------------------------


async def hold(spec: dict[str, Any]) -> None:
    url = f"ws://127.0.0.1:{spec['port']}/webchat/v1/ws"
    sockets: list[ClientConnection] = []
    failures = 0
    gate = asyncio.Semaphore(spec["concurrency"])

    async def answer_pings(ws: ClientConnection) -> None:
        async for raw in ws:
            if '"ping"' in str(raw):
                await ws.send('{"type":"pong"}')

    async def open_one() -> None:
        nonlocal failures
        async with gate:
            try:
                ws = await connect(
                    url,
                    origin=Origin(ORIGIN),
                    open_timeout=60,
                    compression="deflate" if spec.get("deflate", True) else None,
                )
                hello = {
                    "type": "hello",
                    "channel": spec["channel"],
                    "visitorId": secrets.token_hex(16),
                }
                await ws.send(json.dumps(hello))
                welcome = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if welcome["type"] != "welcome":
                    raise RuntimeError(welcome)
            except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
                failures += 1
                if failures <= 3:
                    print(f"socket failed: {exc!r}", file=sys.stderr, flush=True)
                return
            sockets.append(ws)

    started = time.perf_counter()
    await asyncio.gather(*(open_one() for _ in range(spec["sockets"])))
    readers = [asyncio.create_task(answer_pings(ws)) for ws in sockets]
    ready = {"open": len(sockets), "failed": failures, "seconds": time.perf_counter() - started}
    print(json.dumps(ready), flush=True)
    # Hold until the orchestrator closes our stdin (or the safety limit passes).
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), spec["hold_limit"])
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def clients_main() -> None:
    spec = json.loads(sys.stdin.readline())
    raise_nofile(spec["sockets"] + 256)
    try:
        import uvloop

        uvloop.run(hold(spec))
    except ImportError:
        asyncio.run(hold(spec))


# --- the orchestration ---------------------------------------------------------------------


def open_sockets_gauge(base: str) -> float:
    """`byoc_open_websockets` as /metrics reports it (recorded, not trusted: see README)."""
    text = http_get(base + "/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        if family.name == "byoc_open_websockets":
            return sum(s.value for s in family.samples)
    return float("nan")


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    with ExitStack() as cleanup:
        unused = free_port()  # CXone is never called by idle widgets; nothing listens here
        stack = bench_stack(
            args, cleanup, emulator_port=unused, extra_env={"BYOC_LOG_LEVEL": "warning"}
        )
        stack.add_channel(CHANNEL_ID, "--adapter", "webchat", "--allowed-origin", ORIGIN)
        server = stack.serve()
        # Warm the code paths of one socket, so the baseline is not an unimported server.
        warm = subprocess.Popen(
            python_child("idle_sockets.py", "--clients"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert warm.stdin is not None
        assert warm.stdout is not None
        spec = {"port": stack.port, "channel": CHANNEL_ID, "concurrency": 1, "hold_limit": 60}
        warm.stdin.write((json.dumps({**spec, "sockets": 1}) + "\n").encode())
        warm.stdin.flush()
        warm.stdout.readline()
        warm.stdin.close()
        warm.wait(timeout=30)
        time.sleep(args.settle)
        before = tree_rss_kib(server.pid)
        fds_before = tree_fd_count(server.pid)
        per_process = -(-args.sockets // args.processes)
        clients: list[subprocess.Popen[bytes]] = []
        started = time.perf_counter()
        left = args.sockets
        for _ in range(args.processes):
            count = min(per_process, left)
            left -= count
            if count <= 0:
                break
            client = subprocess.Popen(
                python_child("idle_sockets.py", "--clients"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert client.stdin is not None
            line = {**spec, "sockets": count, "concurrency": args.concurrency, "hold_limit": 170}
            line["deflate"] = args.compression == "deflate"
            client.stdin.write((json.dumps(line) + "\n").encode())
            client.stdin.flush()
            clients.append(client)

        def release() -> None:
            for client in clients:
                assert client.stdin is not None
                client.stdin.close()
            for client in clients:
                try:
                    client.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    client.kill()
                    client.wait()

        cleanup.callback(release)
        opened = failed = 0
        for client in clients:
            assert client.stdout is not None
            ready = json.loads(client.stdout.readline() or b'{"open": 0, "failed": -1}')
            opened += ready["open"]
            failed += ready["failed"]
        connect_s = time.perf_counter() - started
        gauge = open_sockets_gauge(stack.base)
        time.sleep(args.settle)
        after = tree_rss_kib(server.pid)
        fds_after = tree_fd_count(server.pid)
        gauge_after = open_sockets_gauge(stack.base)
        check_serving(server, stack.work / "byoc.log")
    return {
        "run": run,
        "sockets": opened,
        "failed": failed,
        "server_fds_added": fds_after - fds_before,
        "open_websockets_gauge": gauge,
        "open_websockets_gauge_after_settle": gauge_after,
        "connect_s": connect_s,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "ratio": after / before,
        "kib_per_socket": (after - before) / max(opened, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes per process")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before a reading")
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="whether clients offer permessage-deflate (browsers do)",
    )
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()

    soft, hard = raise_nofile(args.sockets + 1024)
    now = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"open-file limit: soft {soft}, hard {hard}; raised to {now[0]} for the server")
    results: dict[str, Any] = {
        "nofile": {"soft_found": soft, "hard": hard, "used": now[0]},
        "runs": [],
    }
    for run in range(1, args.runs + 1):
        record = one_run(args, run)
        results["runs"].append(record)
        print(
            f"run {run}: {record['sockets']} sockets open ({record['failed']} failed, server fds "
            f"+{record['server_fds_added']}, gauge {record['open_websockets_gauge']:.0f}) in "
            f"{record['connect_s']:.1f} s | RSS idle "
            f"{record['rss_before_mib']:.1f} MiB -> {record['rss_after_mib']:.1f} MiB "
            f"(x{record['ratio']:.1f}, {record['kib_per_socket']:.1f} KiB/socket)",
            flush=True,
        )
    runs = results["runs"]
    keys = ("rss_before_mib", "rss_after_mib", "ratio", "kib_per_socket", "connect_s")
    medians = summarize(results, keys, "idle_sockets.py")
    results["max_rss_after_mib"] = max(r["rss_after_mib"] for r in runs)
    results["target_mib"] = TARGET_MIB
    results["target_met"] = medians["rss_after_mib"] <= TARGET_MIB and all(
        r["sockets"] == args.sockets for r in runs
    )
    print(
        f"median of {len(runs)}: RSS idle {medians['rss_before_mib']:.1f} MiB, with "
        f"{args.sockets} sockets {medians['rss_after_mib']:.1f} MiB (target <= {TARGET_MIB:g}: "
        f"{'met' if results['target_met'] else 'MISSED'}), x{medians['ratio']:.1f}, "
        f"{medians['kib_per_socket']:.1f} KiB/socket"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--clients"]:
        clients_main()
        sys.exit(0)
    sys.exit(main())
