"""Micro-benchmark: CPU per outgoing HTTP call, httpx vs aiohttp vs byoc.http, on loopback.

    .venv/bin/python bench/client_cpu.py [--calls 3000] [--concurrency 1 8 50] [--rounds 2]
                                         [--clients httpx aiohttp byoc.http]

Starts `bench/receiver.py` (answers 204 at once) as its own process, then, for each client and
each concurrency, sends `--calls` POSTs of a small JSON body with a bearer header (what a DE
create-message call looks like) after 200 warm-up calls, and prints the process CPU time per
call (`time.process_time`, this process only: the client's cost, not the server's) and the
calls per second. The clients are httpx (what byoc once used), aiohttp on its own (a bare
session, no proxy lookup) and `byoc.http` (the middleware's client, on aiohttp). Runtime:
about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from reply_callback import free_port, start, stop, wait_http

from byoc.http import HttpClient

BODY = json.dumps(
    {
        "idOnExternalPlatform": "msg_0123456789abcdef",
        "thread": {"idOnExternalPlatform": "thr_0123456789abcdef"},
        "messageContent": {"type": "TEXT", "payload": {"text": "hello"}},
    }
).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer token"}

Send = Callable[[], Awaitable[None]]


async def measure(send: Send, calls: int, concurrency: int) -> tuple[float, float]:
    """(µs of CPU per call, calls per second)."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await send()

    await asyncio.gather(*(one() for _ in range(200)))
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - cpu) / calls * 1e6, calls / (time.perf_counter() - wall)


async def with_httpx(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(limits=limits) as client:

        async def send() -> None:
            (await client.post(url, content=BODY, headers=HEADERS)).raise_for_status()

        return await measure(send, calls, concurrency)


async def with_aiohttp(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as answer:
                await answer.read()
                answer.raise_for_status()

        return await measure(send, calls, concurrency)


async def with_byoc(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    async with HttpClient(max_connections=100) as client:

        async def send() -> None:
            answer = await client.request("POST", url, content=BODY, headers=HEADERS, timeout=5)
            assert answer.status_code == 204

        return await measure(send, calls, concurrency)


CLIENTS = {"httpx": with_httpx, "aiohttp": with_aiohttp, "byoc.http": with_byoc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 50])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", nargs="+", choices=list(CLIENTS), default=list(CLIENTS))
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        receiver = start(
            [sys.executable, str(Path(__file__).with_name("receiver.py")), str(port)],
            dict(os.environ),
            Path(scratch) / "receiver.log",
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/count")  # the receiver has bound its port
            run_all(args, f"http://127.0.0.1:{port}/webhook")
        finally:
            stop(receiver)


def run_all(args: argparse.Namespace, url: str) -> None:
    print(f"{'client':<10} {'in flight':>9} {'CPU µs/call':>12} {'calls/s':>9}")
    for concurrency in args.concurrency:
        for name in args.clients:
            run = CLIENTS[name]
            results = [asyncio.run(run(url, args.calls, concurrency)) for _ in range(args.rounds)]
            cpu = statistics.median(r[0] for r in results)
            rate = statistics.median(r[1] for r in results)
            print(f"{name:<10} {concurrency:>9} {cpu:>12.0f} {rate:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
