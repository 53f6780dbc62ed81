"""Round trips and statements on PostgreSQL per reply callback, customer message and token.

    .venv/bin/python bench/round_trips.py [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
                                          [--samples 5] [--statements] [--json out.json]

Counts, it does not time: the figures do not depend on how busy the machine is. About 30 s.

`byoc serve` (and everything else that talks to the database) reaches PostgreSQL through a
small TCP proxy in this process that reads the frontend side of the wire protocol
(https://www.postgresql.org/docs/current/protocol-flow.html), so it sees every statement
whatever sent it (SQLAlchemy, the prebuilt path on asyncpg, the pool's pings, BEGIN and
COMMIT, the bus's NOTIFY):

- a **round trip** is a burst of client messages after which the client waits for the server
  (client bytes following server bytes on one connection);
- a **statement** is an `Execute` of the extended protocol (its SQL from the `Parse` of the
  statement bound) or a simple `Query` (asyncpg's BEGIN / COMMIT / ROLLBACK);
- a **prepare** is a `Parse` (asyncpg prepares a statement once per connection; those are
  counted apart, and the warm-up makes them rare);
- a **connection** is a new connection's startup message (the pool opening one).

On a fresh database made for the run: `byoc db upgrade`, a client, a webhook channel to
bench/receiver.py, the CXone emulator, `byoc serve` with the background loops' intervals set
to an hour and the pre-forward end check to an hour (so a window holds one message's work
only, on a conversation CXone was asked about already: the steady state of the customer
message benchmark). One customer message opens the thread; `--warmup` replies and messages
follow. Then each sample is one request, and counting stops once the outbox is empty and
the proxy has seen no traffic for `--quiet` seconds:

- **reply**: `POST /integration/box/2.0/channel/{id}/outbound` on the known thread (a new DE
  message id each), end to end: intake, claim, delivery to the webhook, settle;
- **customer message**: a signed `POST /api/v1/channels/{id}/messages` on the same thread,
  end to end: intake (which claims its own row), delivery to CXone (the create), settle;
- **token**: `POST /integration/box/1.0/token` with the client's id and secret;
- **reply, 64 at once**: `--burst` reply callbacks sent together on the same thread, as the
  reply benchmark's 64 connections do, per reply: what queueing for the pool's connections
  and the conversation's row adds, and how many connections the pool opens meanwhile.

Prints, per kind, the median over samples of round trips, statements, prepares and
connections (and the range when samples differ); `--statements` lists one sample's
statements in order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import postgres_server
from processes import tls
from reply_callback import free_port, reply_body, start, stop
from sqlalchemy.engine import make_url
from stack import BRAND_ID, Stack, python_child

from byoc.channels.signing import signed_headers

CHANNEL_ID = "chat_trips"
# Messages that open a connection before its startup message: answered "no" here, so the
# rest of the conversation is plain text the proxy can read.
SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
HOUR = "3600"


@dataclass
class Event:
    connection: int
    kind: str  # "trip", "statement", "prepare" or "connect"
    sql: str = ""


@dataclass
class _Frontend:
    """What one client connection has said so far."""

    number: int
    buffer: bytearray = field(default_factory=bytearray)
    started: bool = False
    statements: dict[str, str] = field(default_factory=dict)  # prepared name -> SQL
    portals: dict[str, str] = field(default_factory=dict)  # portal -> SQL
    client_turn: bool = False  # the client has sent since the server last answered


class WireCounter:
    """A TCP proxy to PostgreSQL that records round trips and statements (module docstring)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.events: list[Event] = []  # appended by the proxy's thread only
        self.last_traffic = time.monotonic()
        self._connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wire-counter", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
            self._ready.set()
            async with server:
                await server.serve_forever()

        self._loop.run_until_complete(serve())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        frontend = _Frontend(self._connections)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        downstream = asyncio.create_task(self._server_to_client(frontend, up_reader, writer))
        try:
            while data := await reader.read(65536):
                self.last_traffic = time.monotonic()
                if not frontend.client_turn:
                    frontend.client_turn = True
                    if frontend.started:
                        self.events.append(Event(frontend.number, "trip"))
                forward, answer = self._read_frontend(frontend, data)
                if answer:
                    writer.write(answer)
                if forward:
                    up_writer.write(forward)
                    await up_writer.drain()
        except ConnectionError:
            pass
        finally:
            up_writer.close()
            await asyncio.gather(downstream, return_exceptions=True)
            writer.close()

    async def _server_to_client(
        self, frontend: _Frontend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await reader.read(65536):
                self.last_traffic = time.monotonic()
                frontend.client_turn = False
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _read_frontend(self, frontend: _Frontend, data: bytes) -> tuple[bytes, bytes]:
        """What to forward upstream and what to answer the client straight away."""
        frontend.buffer += data
        forward, answer = bytearray(), bytearray()
        buffer = frontend.buffer
        while True:
            if not frontend.started:
                if len(buffer) < 8:
                    break
                (length, code) = struct.unpack("!ii", buffer[:8])
                if len(buffer) < length:
                    break
                message = bytes(buffer[:length])
                del buffer[:length]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    answer += b"N"
                    continue
                frontend.started = True
                self.events.append(Event(frontend.number, "connect"))
                forward += message
                continue
            if len(buffer) < 5:
                break
            kind = chr(buffer[0])
            (length,) = struct.unpack("!i", buffer[1:5])
            if len(buffer) < 1 + length:
                break
            body = bytes(buffer[5 : 1 + length])
            forward += buffer[: 1 + length]
            del buffer[: 1 + length]
            self._message(frontend, kind, body)
        return bytes(forward), bytes(answer)

    def _message(self, frontend: _Frontend, kind: str, body: bytes) -> None:
        parts = body.split(b"\0")
        if kind == "P":  # Parse: name, query
            name, sql = parts[0].decode(), parts[1].decode()
            frontend.statements[name] = sql
            self.events.append(Event(frontend.number, "prepare", sql))
        elif kind == "B":  # Bind: portal, statement
            frontend.portals[parts[0].decode()] = frontend.statements.get(parts[1].decode(), "?")
        elif kind == "E":  # Execute: portal
            sql = frontend.portals.get(parts[0].decode(), "?")
            self.events.append(Event(frontend.number, "statement", sql))
        elif kind == "Q":  # a simple query
            self.events.append(Event(frontend.number, "statement", parts[0].decode()))


# --- the stack --------------------------------------------------------------------------------


def outbox_rows(direct_url: str) -> int:
    """Rows in the outbox, asked past the proxy."""

    async def count() -> int:
        conn = await asyncpg.connect(direct_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM outbox"))
        finally:
            await conn.close()

    return asyncio.run(count())


def is_quiet(counter: WireCounter, quiet: float) -> bool:
    return time.monotonic() - counter.last_traffic >= quiet


def settle(counter: WireCounter, direct_url: str, quiet: float, limit: float = 30.0) -> None:
    """Until the outbox is empty and nothing has crossed the proxy for `quiet` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        # Quiet before and after the count: the server may have woken while it ran.
        if is_quiet(counter, quiet) and outbox_rows(direct_url) == 0 and is_quiet(counter, quiet):
            return
        time.sleep(quiet / 4)
    raise SystemExit(f"the outbox did not drain within {limit:g} s")


@dataclass
class Tally:
    trips: float
    statements: float
    prepares: float
    connections: float
    listing: list[str]


def tally(events: list[Event], per: int = 1) -> Tally:
    statements = [e for e in events if e.kind == "statement"]
    return Tally(
        trips=sum(e.kind == "trip" for e in events) / per,
        statements=len(statements) / per,
        prepares=sum(e.kind == "prepare" for e in events) / per,
        connections=sum(e.kind == "connect" for e in events) / per,
        listing=[f"[{e.connection}] {' '.join(e.sql.split())}" for e in statements],
    )


def measure(
    counter: WireCounter, direct_url: str, quiet: float, action: Callable[[], Any], per: int = 1
) -> Tally:
    settle(counter, direct_url, quiet)
    mark = len(counter.events)
    action()
    settle(counter, direct_url, quiet)
    return tally(counter.events[mark:], per)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--quiet", type=float, default=0.5, help="seconds without traffic")
    parser.add_argument("--burst", type=int, default=64, help="replies sent at once")
    parser.add_argument("--statements", action="store_true", help="list one sample's statements")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    server = make_url(args.postgres_url)
    with ExitStack() as cleanup:
        direct_url = postgres_server.fresh_database(args.postgres_url, cleanup)
        counter = WireCounter(server.host or "127.0.0.1", server.port or 5432)
        counter.start()
        proxied = make_url(direct_url).set(host="127.0.0.1", port=counter.port)
        receiver_port = free_port()
        stack = Stack(
            cleanup,
            database_url=proxied.render_as_string(hide_password=False),
            workers=1,  # one instance: one pool
            extra_env={
                "BYOC_OUTBOX_POLL_INTERVAL_SECONDS": HOUR,
                "BYOC_TIMER_POLL_INTERVAL_SECONDS": HOUR,
                "BYOC_END_POLL_INTERVAL_SECONDS": HOUR,
                "BYOC_WIDGET_UPLOAD_SWEEP_INTERVAL_SECONDS": HOUR,
                "BYOC_END_CHECK_MIN_INTERVAL_SECONDS": HOUR,
            },
        )
        stack.prepare()
        client = stack.byoc("clients", "create")
        channel = stack.add_channel(
            CHANNEL_ID, "--webhook-url", f"http://127.0.0.1:{receiver_port}/webhook"
        )
        receiver = start(
            python_child("receiver.py", str(receiver_port)), stack.env, stack.work / "receiver.log"
        )
        cleanup.callback(stop, receiver)
        stack.start_emulator(client, [CHANNEL_ID])
        stack.serve()
        http = cleanup.enter_context(httpx.Client(base_url=stack.base, timeout=10))
        sequence = iter(range(1, 1_000_000))

        def customer_message() -> None:
            body = json.dumps(
                {
                    "id": f"trips-{next(sequence)}",
                    "customer": {"id": "trips-customer", "firstName": "Ada"},
                    "text": "hello",
                }
            ).encode()
            headers = {"Content-Type": "application/json"}
            headers.update(signed_headers(channel["secret"], body))
            path = f"/api/v1/channels/{CHANNEL_ID}/messages"
            answer = http.post(path, content=body, headers=headers)
            if answer.status_code != 202:
                raise SystemExit(f"customer message answered {answer.status_code}: {answer.text}")
            thread[0] = answer.json()["threadId"]

        def token() -> str:
            answer = http.post(
                "/integration/box/1.0/token",
                data={"grant_type": "client_credentials"},
                auth=(client["client_id"], client["client_secret"]),
            )
            if answer.status_code != 200:
                raise SystemExit(f"token endpoint answered {answer.status_code}: {answer.text}")
            access_token: str = answer.json()["access_token"]
            return access_token

        def reply() -> None:
            body = reply_body(thread[0], BRAND_ID, "trips").replace("__SEQ__", str(next(sequence)))
            answer = httpx.post(
                f"{stack.base}/integration/box/2.0/channel/{CHANNEL_ID}/outbound",
                content=body,
                headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
                timeout=30,
                verify=tls(),  # a context per call would cost ~40 ms of CPU each
            )
            if answer.status_code != 200:
                raise SystemExit(f"reply callback answered {answer.status_code}: {answer.text}")

        def burst() -> None:
            with ThreadPoolExecutor(args.burst) as senders:
                for sent in [senders.submit(reply) for _ in range(args.burst)]:
                    sent.result()

        thread = [""]
        customer_message()
        bearer = token()
        for _ in range(args.warmup):
            reply()
            customer_message()
            token()
        cases = {"reply": reply, "customer message": customer_message, "token": token}
        results: dict[str, Any] = {}
        for name, action in cases.items():
            results[name] = [
                measure(counter, direct_url, args.quiet, action) for _ in range(args.samples)
            ]
        # Under load: the replies queue for the pool's connections and one conversation's row.
        results[f"reply, {args.burst} at once"] = [
            measure(counter, direct_url, args.quiet, burst, per=args.burst)
            for _ in range(args.samples)
        ]
        if receiver.poll() is not None:
            raise SystemExit("the receiver exited early")

    report: dict[str, Any] = {"samples": args.samples, "kinds": {}}
    print(f"per request, median of {args.samples} (range when samples differ):")
    for name, samples in results.items():
        row: dict[str, Any] = {}
        cells = []
        for key in ("trips", "statements", "prepares", "connections"):
            values = [getattr(s, key) for s in samples]
            row[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
            low, high = f"{min(values):.3g}", f"{max(values):.3g}"
            spread = f" ({low} to {high})" if low != high else ""
            cells.append(f"{key} {statistics.median(values):.3g}{spread}")
        row["listing"] = samples[0].listing
        report["kinds"][name] = row
        print(f"  {name:<20} " + ", ".join(cells))
        if args.statements:
            for line in samples[0].listing:
                print(f"      {line[:160]}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
