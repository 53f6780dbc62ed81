"""A small HTTP/1.1 load generator on raw asyncio streams (uvloop when installed).

Run as its own process so that it never shares an event loop or a GIL with the server:

    python bench/loadgen.py < spec.json     # prints one JSON result line

Two modes:
  closed  `connections` keep-alive connections, each sending its next request as soon as the
          previous answer arrived: saturated throughput.
  open    requests scheduled at fixed times (`rate` per second) whatever the answers do; each
          latency is measured from the request's *scheduled* time, so a server (or generator)
          that falls behind shows up in the percentiles instead of silently lowering the rate
          (no coordinated omission).

Request bodies may contain `__SEQ__`, replaced by a per-request sequence number (unique ids),
and `__VAR__`, replaced by `variants[seq % len(variants)]` (e.g. spreading requests over
conversations). Every result counts `ok_total`: the 2xx answers of the whole run, warm-up and
answers that arrived after the measured window included (what the server accepted).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

SEQ = "__SEQ__"
VAR = "__VAR__"


@dataclass
class Spec:
    mode: str
    host: str
    port: int
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    connections: int = 64
    duration: float = 5.0
    warmup: float = 1.0
    rate: float = 500.0
    max_connections: int = 512
    variants: list[str] = field(default_factory=list)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        """Send one request, read the whole answer; returns the status code."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def build_request(spec: Spec, seq: int) -> bytes:
    text = spec.body
    if text is not None:
        text = text.replace(SEQ, str(seq))
        if spec.variants:
            text = text.replace(VAR, spec.variants[seq % len(spec.variants)])
    body = text.encode() if text is not None else b""
    lines = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: {spec.host}:{spec.port}"]
    lines += [f"{k}: {v}" for k, v in spec.headers.items()]
    if text is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def summary(latencies: list[float], statuses: dict[int, int], errors: int, window: float) -> Any:
    ordered = sorted(latencies)
    ms = [v * 1000 for v in ordered]
    return {
        "requests": len(ordered),
        "throughput": len(ordered) / window if window > 0 else 0.0,
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": {
            "p50": percentile(ms, 0.50),
            "p90": percentile(ms, 0.90),
            "p99": percentile(ms, 0.99),
            "max": ms[-1] if ms else float("nan"),
        },
    }


async def closed_loop(spec: Spec) -> Any:
    connections = [await Connection.open(spec.host, spec.port) for _ in range(spec.connections)]
    started = time.perf_counter()
    measure_from = started + spec.warmup
    stop_at = measure_from + spec.duration
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    seq = 0
    ok_total = 0

    async def worker(conn: Connection) -> None:
        nonlocal seq, errors, ok_total
        while True:
            seq += 1
            request = build_request(spec, seq)
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            try:
                status = await conn.exchange(request)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                conn.close()
                conn = await Connection.open(spec.host, spec.port)
                continue
            done = time.perf_counter()
            if 200 <= status < 300:
                ok_total += 1
            if sent >= measure_from and done <= stop_at:
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1
                if status >= 400:
                    errors += 1

    await asyncio.gather(*(worker(c) for c in connections))
    for c in connections:
        c.close()
    result = summary(latencies, statuses, errors, spec.duration)
    result["ok_total"] = ok_total
    return result


async def open_loop(spec: Spec) -> Any:
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    for _ in range(min(spec.connections, spec.max_connections)):
        idle.put_nowait(await Connection.open(spec.host, spec.port))
        opened += 1
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    ok_total = 0
    lag_max = 0.0
    tasks: set[asyncio.Task[None]] = set()
    clock = time.perf_counter  # uvloop's loop.time() has 1 ms resolution: too coarse here
    total = int((spec.warmup + spec.duration) * spec.rate)
    warmup_count = int(spec.warmup * spec.rate)
    begin = clock() + 0.05

    async def one(seq: int, scheduled: float) -> None:
        nonlocal opened, errors, ok_total
        request = build_request(spec, seq)
        if idle.empty() and opened < spec.max_connections:
            opened += 1
            conn = await Connection.open(spec.host, spec.port)
        else:
            conn = await idle.get()
        try:
            status = await conn.exchange(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.close()
            opened -= 1
            return
        done = clock()
        idle.put_nowait(conn)
        if 200 <= status < 300:
            ok_total += 1
        if seq >= warmup_count:
            latencies.append(done - scheduled)
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 400:
                errors += 1

    for seq in range(total):
        scheduled = begin + seq / spec.rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag_max = max(lag_max, -delay)
        task = asyncio.create_task(one(seq, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    unfinished = 0
    if tasks:
        _, still_running = await asyncio.wait(tasks, timeout=30)
        unfinished = len(still_running)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*still_running, return_exceptions=True)
    # A request with no answer 30 s after the last send counts as infinitely slow: leaving it
    # out would flatter the percentiles exactly when the server is overloaded.
    latencies.extend([float("inf")] * unfinished)
    result = summary(latencies, statuses, errors + unfinished, spec.duration)
    result["unfinished"] = unfinished
    result["ok_total"] = ok_total
    result["offered_rate"] = spec.rate
    result["dispatch_lag_max_ms"] = lag_max * 1000
    result["connections_opened"] = opened
    while not idle.empty():
        idle.get_nowait().close()
    return result


def main() -> None:
    spec = Spec(**json.loads(sys.stdin.read()))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(closed_loop(spec) if spec.mode == "closed" else open_loop(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
