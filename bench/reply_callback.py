"""Benchmark: the agent reply callback (`POST /integration/box/2.0/channel/{id}/outbound`).

    .venv/bin/python bench/reply_callback.py            # 3 runs, about 2 minutes

Everything on loopback, bounded in time and count. Starts, as separate processes: the CXone
emulator (`cxone-emulator serve`), a tiny webhook receiver standing in for the platform
(bench/receiver.py), and `byoc serve` on a fresh SQLite file. Creates a client, a channel
and a known thread (one customer message), takes a bearer token from the box token endpoint,
then, in each run, with the load generator as yet another process (bench/loadgen.py):

  1. /healthz, saturated: 64 connections, closed loop           -> baseline req/s
  2. reply callback, saturated: 64 connections, closed loop     -> req/s, ratio to 1.
  3. reply callback, open loop at a constant 500 req/s          -> p50 / p99 from the
     scheduled send time

At the end of phases 2 and 3 it reads the outbox backlog (pending rows, from the server's own
/metrics) and says when the backlog grew past one second of the phase's traffic: intake alone
does not say whether delivery keeps up (bench/sustained.py measures the rate at which it does).
Between phases it waits (bounded) until the outbox has delivered every reply to the receiver,
so that one phase's backlog does not slow the next. Prints each run and the medians over runs;
`--json PATH` also writes them.

`--database-url postgresql://...` runs on a fresh PostgreSQL database created next to the one
named (bench/postgres_server.py), with VACUUM (ANALYZE) before each run; `--workers N` is
passed on to `byoc serve`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import postgres_server
from processes import byoc_command, check_serving, http_get, serve_argv, tool, wait_serving
from prometheus_client.parser import text_string_to_metric_families

from byoc.channels.signing import signed_headers

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
CHANNEL_ID = "chat_bench_" + secrets.token_hex(4)
TARGETS = {"reply_rps": 1500.0, "ratio": 0.35, "open_p99_ms": 25.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http_get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up within {timeout:g} s")
        time.sleep(0.1)


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py")],
        input=json.dumps(spec).encode(),
        capture_output=True,
        timeout=spec.get("duration", 5) + spec.get("warmup", 1) + 60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def pending_rows(base: str) -> float:
    text = http_get(base + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "byoc_outbox_rows":
            return sum(s.value for s in family.samples if s.labels.get("state") == "pending")
    return 0.0


def wait_drained(base: str, limit: float) -> float:
    """Seconds until no outbox row is pending (capped at `limit`)."""
    started = time.monotonic()
    while pending_rows(base) > 0 and time.monotonic() - started < limit:
        time.sleep(0.25)
    return time.monotonic() - started


def reply_body(thread_id: str, brand_id: int, tag: str) -> str:
    return json.dumps(
        {
            "brand": {"id": brand_id},
            "thread": {"idOnExternalPlatform": thread_id},
            "messageId": f"de-{tag}-__SEQ__",
            "messageContent": {"type": "TEXT", "payload": {"text": "Thanks, on it."}},
            "authorUser": {"id": 7, "firstName": "Agent", "surname": "Smith"},
        },
        separators=(",", ":"),
    )


def profile_server(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if py_spy is None:
        print("py-spy not installed: no profile", file=sys.stderr)
        return None
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
    argv += ["--rate", "100", "--format", "raw", "--output", str(out), "--threads", "--gil"]
    argv += ["--subprocesses"]  # with `--workers`, the workers under the supervisor
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="saturated phases (s)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop offered req/s")
    parser.add_argument("--open-duration", type=float, default=10.0)
    parser.add_argument("--drain-limit", type=float, default=60.0)
    parser.add_argument("--server-log-level", default="info")
    parser.add_argument(
        "--database-url",
        help="e.g. postgresql://postgres@127.0.0.1:5432/test: a fresh database next to it, "
        "dropped afterwards (default: SQLite)",
    )
    parser.add_argument("--workers", type=int, help="passed on to `byoc serve --workers N`")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of run 1's phase 2")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="byoc-bench-"))
    cleanup = ExitStack()
    database_url = args.database_url
    if database_url:
        database_url = postgres_server.fresh_database(database_url, cleanup, keep=args.keep)
    ports = {name: free_port() for name in ("byoc", "emulator", "receiver")}
    base = f"http://127.0.0.1:{ports['byoc']}"
    emulator = f"http://127.0.0.1:{ports['emulator']}"
    brand_id = 1001
    env = {
        **os.environ,
        "BYOC_DATABASE_URL": database_url or f"sqlite:///{work / 'byoc.db'}",
        "BYOC_PORT": str(ports["byoc"]),
        "BYOC_PUBLIC_URL": base,
        "BYOC_CXONE_API_URL": emulator + "/dfo/3.0",
        "BYOC_CXONE_TOKEN_URL": emulator + "/auth/token",
        "BYOC_CXONE_BRAND_ID": str(brand_id),
        "BYOC_LOG_LEVEL": args.server_log_level,
        # The platform stand-in and the emulator listen on loopback.
        "BYOC_OUTBOUND_ALLOW_PRIVATE": "127.0.0.1/32",
    }
    results: dict[str, Any] = {"runs": []}
    with cleanup:
        if not args.keep:
            cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        byoc_command(["db", "upgrade"], env)
        client = json.loads(byoc_command(["clients", "create", "--json"], env))
        webhook = f"http://127.0.0.1:{ports['receiver']}/webhook"
        channel = json.loads(
            byoc_command(
                ["channels", "add", "--id", CHANNEL_ID, "--json", "--webhook-url", webhook], env
            )
        )
        receiver = start(
            [sys.executable, str(HERE / "receiver.py"), str(ports["receiver"])],
            env,
            work / "receiver.log",
        )
        cleanup.callback(stop, receiver)
        box = base + "/integration/box"
        integration = (
            f"id=bench,box_url={box},authorization_url={box}/1.0/token,"
            f"client_id={client['client_id']},client_secret={client['client_secret']}"
        )
        emulator_argv = [tool("cxone-emulator"), "serve", "--port", str(ports["emulator"])]
        emulator_argv += ["--log-level", "warning", "--integration", integration]
        emulator_argv += ["--channel", f"id={CHANNEL_ID},integration=bench,name=Bench"]
        cxone = start(
            emulator_argv,
            env,
            work / "emulator.log",
        )
        cleanup.callback(stop, cxone)
        server = start(serve_argv(args.workers), env, work / "byoc.log")
        cleanup.callback(stop, server)
        wait_http(emulator + "/dfo/3.0/channels")
        wait_serving(server, base + "/healthz", work / "byoc.log")

        with httpx.Client(base_url=base, timeout=10) as http:
            body = json.dumps(
                {"customer": {"id": "bench-customer", "firstName": "Ada"}, "text": "hello"}
            ).encode()
            accepted = http.post(
                f"/api/v1/channels/{CHANNEL_ID}/messages",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    **signed_headers(channel["secret"], body),
                },
            )
            accepted.raise_for_status()
            thread_id = accepted.json()["threadId"]
            token = http.post(
                "/integration/box/1.0/token",
                data={"grant_type": "client_credentials"},
                auth=(client["client_id"], client["client_secret"]),
            ).json()["access_token"]
            probe = http.post(
                f"/integration/box/2.0/channel/{CHANNEL_ID}/outbound",
                content=reply_body(thread_id, brand_id, "probe").replace("__SEQ__", "0"),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            if probe.status_code != 200:
                raise SystemExit(f"reply callback answered {probe.status_code}: {probe.text}")

        common = {"host": "127.0.0.1", "port": ports["byoc"], "warmup": args.warmup}
        reply_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        reply_path = f"/integration/box/2.0/channel/{CHANNEL_ID}/outbound"
        for run in range(1, args.runs + 1):
            wait_drained(base, args.drain_limit)
            if database_url:
                postgres_server.vacuum(database_url)
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
            profiler = None
            if args.profile and run == 1:
                profiler = profile_server(server.pid, args.duration, args.profile)
            saturated = loadgen(
                {
                    **common,
                    "mode": "closed",
                    "method": "POST",
                    "path": reply_path,
                    "headers": reply_headers,
                    "body": reply_body(thread_id, brand_id, f"r{run}-closed"),
                    "connections": args.connections,
                    "duration": args.duration,
                }
            )
            if profiler is not None:
                profiler.wait(timeout=60)
            backlog = pending_rows(base)
            drain = wait_drained(base, args.drain_limit)
            open_loop = loadgen(
                {
                    **common,
                    "mode": "open",
                    "method": "POST",
                    "path": reply_path,
                    "headers": reply_headers,
                    "body": reply_body(thread_id, brand_id, f"r{run}-open"),
                    "connections": 16,
                    "rate": args.rate,
                    "duration": args.open_duration,
                }
            )
            open_backlog = pending_rows(base)
            record = {
                "run": run,
                "healthz_rps": healthz["throughput"],
                "reply_rps": saturated["throughput"],
                "ratio": saturated["throughput"] / healthz["throughput"],
                "reply_closed_p99_ms": saturated["latency_ms"]["p99"],
                "outbox_backlog_after_saturated": backlog,
                "outbox_drain_s": drain,
                "outbox_backlog_after_open": open_backlog,
                "backlog_grew": {
                    "saturated": backlog > saturated["throughput"],
                    "open": open_backlog > args.rate,
                },
                "open_p50_ms": open_loop["latency_ms"]["p50"],
                "open_p99_ms": open_loop["latency_ms"]["p99"],
                "open_max_ms": open_loop["latency_ms"]["max"],
                "errors": healthz["errors"] + saturated["errors"] + open_loop["errors"],
                "detail": {"healthz": healthz, "reply": saturated, "open": open_loop},
            }
            results["runs"].append(record)
            grew = {
                phase: " (GREW past 1 s of traffic: delivery behind)" if grown else ""
                for phase, grown in record["backlog_grew"].items()
            }
            print(
                f"run {run}: /healthz {record['healthz_rps']:7.0f} req/s | reply "
                f"{record['reply_rps']:7.0f} req/s (ratio {record['ratio']:.2f}, closed p99 "
                f"{record['reply_closed_p99_ms']:.1f} ms) | outbox backlog "
                f"{backlog:.0f}{grew['saturated']}, drained in {drain:.1f} s | open "
                f"{args.rate:g}/s: p50 "
                f"{record['open_p50_ms']:.1f} ms, p99 {record['open_p99_ms']:.1f} ms, max "
                f"{record['open_max_ms']:.1f} ms, backlog {open_backlog:.0f}"
                f"{grew['open']} | errors "
                f"{record['errors']}",
                flush=True,
            )
        check_serving(server, work / "byoc.log")

    runs = results["runs"]
    medians = {
        key: statistics.median(r[key] for r in runs)
        for key in ("healthz_rps", "reply_rps", "ratio", "open_p50_ms", "open_p99_ms")
    }
    results["median"] = medians
    results["p99_of_runs_open_ms"] = max(r["open_p99_ms"] for r in runs)
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    results["command"] = " ".join(["bench/reply_callback.py", *sys.argv[1:]])
    verdicts = {
        "reply_rps": medians["reply_rps"] >= TARGETS["reply_rps"],
        "ratio": medians["ratio"] >= TARGETS["ratio"],
        "open_p99_ms": medians["open_p99_ms"] <= TARGETS["open_p99_ms"],
    }
    results["targets_met"] = verdicts
    print(
        f"median of {len(runs)}: /healthz {medians['healthz_rps']:.0f} req/s, reply "
        f"{medians['reply_rps']:.0f} req/s (target >= {TARGETS['reply_rps']:.0f}: "
        f"{'met' if verdicts['reply_rps'] else 'MISSED'}), ratio {medians['ratio']:.2f} "
        f"(target >= {TARGETS['ratio']}: {'met' if verdicts['ratio'] else 'MISSED'}), open "
        f"{args.rate:g}/s p50 {medians['open_p50_ms']:.1f} ms p99 {medians['open_p99_ms']:.1f} ms "
        f"(target <= {TARGETS['open_p99_ms']:g}: {'met' if verdicts['open_p99_ms'] else 'MISSED'})"
    )
    if args.keep:
        print(f"data and logs kept in {work}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
