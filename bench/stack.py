"""Shared set-up of the benchmarks (sustained, token_endpoint, customer_message, widget_push,
idle_sockets, idle_timers, slow_clients): a `byoc serve` process on a fresh SQLite file or a
fresh PostgreSQL database (`--database-url`), with `--workers N` when asked, optionally the
CXone emulator, and readings of a process's memory and CPU from /proc.

Process start/stop, free ports and the HTTP wait come from reply_callback.py, the open-loop
generator from loadgen.py, the `byoc serve` command line from processes.py and the PostgreSQL
databases from postgres_server.py; this module only adds what those benchmarks need on top.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import postgres_server
from processes import byoc_command, descendants, serve_argv, tree_cpu_seconds, wait_serving
from reply_callback import free_port, start, stop, tool, wait_http

from byoc.channels.signing import signed_headers

HERE = Path(__file__).resolve().parent
BRAND_ID = 1001


def raise_nofile(wanted: int) -> tuple[int, int]:
    """Raise this process's open-file soft limit towards `wanted` (bounded by the hard limit);
    returns the (soft, hard) limits found before. Children inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, hard


def median_p99(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"median": float("nan"), "p99": float("nan"), "max": float("nan")}
    index = min(len(ordered) - 1, max(0, round(0.99 * (len(ordered) - 1))))
    return {"median": statistics.median(ordered), "p99": ordered[index], "max": ordered[-1]}


@dataclass
class Stack:
    """A data directory and the BYOC_* environment of one middleware."""

    cleanup: ExitStack
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="byoc-bench-")))
    port: int = field(default_factory=free_port)
    emulator_port: int = field(default_factory=free_port)
    keep: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    db_name: str = "byoc.db"
    server_pid: int = 0
    database_url: str | None = None  # a PostgreSQL database of its own; None: SQLite in `work`
    workers: int | None = None  # `byoc serve --workers N`; None: the option is not passed

    def __post_init__(self) -> None:
        if not self.keep:
            self.cleanup.callback(shutil.rmtree, self.work, ignore_errors=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def emulator(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def db_path(self) -> Path:
        return self.work / self.db_name

    @property
    def postgres(self) -> bool:
        return self.database_url is not None

    def vacuum(self) -> None:
        """VACUUM (ANALYZE) on PostgreSQL before a measurement; nothing on SQLite."""
        if self.database_url is not None:
            postgres_server.vacuum(self.database_url)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "BYOC_DATABASE_URL": self.database_url or f"sqlite:///{self.db_path}",
            "BYOC_PORT": str(self.port),
            "BYOC_PUBLIC_URL": self.base,
            "BYOC_CXONE_API_URL": self.emulator + "/dfo/3.0",
            "BYOC_CXONE_TOKEN_URL": self.emulator + "/auth/token",
            "BYOC_CXONE_BRAND_ID": str(BRAND_ID),
            "BYOC_LOG_LEVEL": "warning",
            # The platform stand-in and the emulator listen on loopback.
            "BYOC_OUTBOUND_ALLOW_PRIVATE": "127.0.0.1/32",
            # Every simulated customer comes from loopback: one address, thousands of visitors.
            "BYOC_WIDGET_MESSAGES_PER_ADDRESS": "1000000/minute",
            "BYOC_WIDGET_HELLOS_PER_ADDRESS": "1000000/minute",
            **self.extra_env,
        }

    def byoc(self, *args: str) -> Any:
        """A `byoc` command with --json, run in this process; its parsed output."""
        return json.loads(byoc_command([*args, "--json"], self.env))

    def prepare(self) -> None:
        byoc_command(["db", "upgrade"], self.env)

    def add_channel(self, channel_id: str, *options: str) -> dict[str, Any]:
        channel: dict[str, Any] = self.byoc("channels", "add", "--id", channel_id, *options)
        return channel

    def start_emulator(
        self, client: dict[str, Any], channel_ids: Sequence[str], argv: Sequence[str] | None = None
    ) -> subprocess.Popen[bytes]:
        """`cxone-emulator serve` (or `argv`, a compatible command) with one integration
        pointing at this middleware's box and the given channels."""
        box = self.base + "/integration/box"
        integration = (
            f"id=bench,box_url={box},authorization_url={box}/1.0/token,"
            f"client_id={client['client_id']},client_secret={client['client_secret']}"
        )
        command = list(argv or [tool("cxone-emulator")])
        command += ["serve", "--port", str(self.emulator_port), "--log-level", "warning"]
        command += ["--integration", integration]
        for channel_id in channel_ids:
            command += ["--channel", f"id={channel_id},integration=bench,name=Bench"]
        process = start(command, self.env, self.work / "emulator.log")
        self.cleanup.callback(stop, process)
        wait_http(self.emulator + "/emulator/info")
        return process

    def serve(self, log_name: str = "byoc.log") -> subprocess.Popen[bytes]:
        """`byoc serve`, once it answers."""
        process = self.start_server(log_name)
        self.wait_server(process, log_name)
        return process

    def start_server(self, log_name: str = "byoc.log") -> subprocess.Popen[bytes]:
        """`byoc serve` started, not waited for (`wait_server`): several start at once."""
        process = start(serve_argv(self.workers), self.env, self.work / log_name)
        self.cleanup.callback(stop, process)
        self.server_pid = process.pid
        return process

    def wait_server(self, process: subprocess.Popen[bytes], log_name: str = "byoc.log") -> None:
        wait_serving(process, self.base + "/healthz", self.work / log_name)

    def customer_message(
        self, http: httpx.Client, channel_id: str, secret: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """A signed customer message through the platform API; its `202` body."""
        body = json.dumps(payload).encode()
        answer = http.post(
            f"/api/v1/channels/{channel_id}/messages",
            content=body,
            headers={"Content-Type": "application/json", **signed_headers(secret, body)},
        )
        if answer.status_code != 202:
            raise SystemExit(f"customer message answered {answer.status_code}: {answer.text}")
        accepted: dict[str, Any] = answer.json()
        return accepted

    def box_token(self, http: httpx.Client, client: dict[str, Any]) -> str:
        """A bearer token from the box token endpoint, as CXone takes one."""
        answer = http.post(
            "/integration/box/1.0/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])


def ratio(value: float, baseline: float) -> float:
    """`value / baseline`; NaN when the baseline measured nothing (a starved machine)."""
    return value / baseline if baseline > 0 else float("nan")


def work_reading(stack: Stack) -> dict[str, Any]:
    """CPU of byoc's whole process tree and, on PostgreSQL, a look at the server's work."""
    found: dict[str, Any] = {
        "byoc_cpu_s": tree_cpu_seconds(stack.server_pid),
        # `byoc serve` and its children: with --workers N > 1, the supervisor, N workers and
        # multiprocessing's resource tracker.
        "byoc_processes": len(descendants(stack.server_pid)),
    }
    if stack.database_url is not None:
        found["pg"] = postgres_server.reading(stack.database_url)
    return found


def work_per(
    before: dict[str, Any], after: dict[str, Any], count: int, unit: str
) -> dict[str, Any]:
    """What one `unit` (reply, message) cost between two `work_reading`s, over `count` of them:
    byoc CPU, PostgreSQL CPU (the database's backends, the shared writers), WAL bytes, write
    transactions."""
    per = max(count, 1)
    work: dict[str, Any] = {
        "count": count,
        "byoc_processes": after["byoc_processes"],
        "byoc_cpu_s": after["byoc_cpu_s"] - before["byoc_cpu_s"],
    }
    work[f"byoc_cpu_ms_per_{unit}"] = 1000 * work["byoc_cpu_s"] / per
    if "pg" in before and "pg" in after:
        pg = postgres_server.work_between(before["pg"], after["pg"])
        work |= pg
        work[f"pg_backend_cpu_ms_per_{unit}"] = 1000 * pg["pg_backend_cpu_s"] / per
        work[f"pg_shared_cpu_ms_per_{unit}"] = 1000 * pg["pg_shared_cpu_s"] / per
        work[f"pg_cpu_ms_per_{unit}"] = (
            work[f"pg_backend_cpu_ms_per_{unit}"] + work[f"pg_shared_cpu_ms_per_{unit}"]
        )
        work[f"wal_bytes_per_{unit}"] = pg["wal_bytes"] / per
        work[f"write_transactions_per_{unit}"] = pg["write_transactions"] / per
        work["wal_bytes_per_write_transaction"] = pg["wal_bytes"] / max(pg["write_transactions"], 1)
    return work


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """`--database-url` and `--workers` as every benchmark that starts `byoc serve` takes them."""
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server and database to connect to, e.g. "
        "postgresql://postgres@127.0.0.1:5432/test: each stack gets a fresh database next to "
        "it, dropped afterwards (default: a fresh SQLite file)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="passed to `byoc serve --workers N` (default: not passed, one process)",
    )


def bench_stack(args: argparse.Namespace, cleanup: ExitStack, **options: Any) -> Stack:
    """A Stack on the database and worker count of the command line; its store migrated."""
    keep = bool(getattr(args, "keep", False))
    workers = getattr(args, "workers", None)
    serve_argv(workers)  # an unsupported --workers stops here, before any set-up
    database_url = None
    if args.database_url:
        if not postgres_server.is_postgres(args.database_url):
            raise SystemExit("--database-url: only postgresql://... (SQLite is the default)")
        database_url = postgres_server.fresh_database(args.database_url, cleanup, keep=keep)
    stack = Stack(
        cleanup,
        keep=keep,
        database_url=database_url,
        workers=workers,
        **options,
    )
    stack.prepare()
    return stack


def summarize(results: dict[str, Any], keys: Sequence[str], script: str) -> dict[str, float]:
    """Medians over `results["runs"]`, recorded in `results` with where and how they were taken."""
    medians = {key: statistics.median(r[key] for r in results["runs"]) for key in keys}
    results["median"] = medians
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    results["source"] = source_state()
    results["command"] = " ".join([f"bench/{script}", *sys.argv[1:]])
    return medians


def python_child(script: str, *args: str) -> list[str]:
    return [sys.executable, str(HERE / script), *args]


def source_state() -> str:
    """The commit measured, and whether src/ had uncommitted changes at the time (other
    engineers work in the same tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            cwd=HERE.parent,
            check=True,
        ).stdout.decode()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            capture_output=True,
            cwd=HERE.parent,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = len(dirty.splitlines())
    return head.strip() + (f" + {changed} uncommitted file(s) under src/" if changed else "")
