"""`byoc demo`: the whole story on one machine, on the embedded default.

Starts the bundled CXone emulator (as a separate process: the middleware never imports it),
the middleware on SQLite (allowed to reach loopback), and "The Watering Hole", a stand-in
platform that prints the signed webhooks it receives. It plays one exchange end to end and keeps
running so a person can answer from the emulator's agent console.

Every run starts from a fresh store (the emulator keeps contacts in memory only). The ports are
taken first; a busy one ends the demo with one line naming it and the flag to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
import websockets
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from websockets.typing import Origin

from byoc.app import create_app
from byoc.box.credentials import hash_secret, new_client_credentials
from byoc.channels import WEBCHAT, WEBHOOK
from byoc.channels.signing import signed_headers, verify_webhook
from byoc.cli.serve import server_config
from byoc.demo_ports import PORT_FLAGS, DemoError, DemoPorts, take_ports
from byoc.errors import Unauthenticated
from byoc.http import HttpClient, HttpError, HttpResponse
from byoc.settings import Settings
from byoc.store import Connection, Database, channels, clients, tenants
from byoc.store.migrations import upgrade
from byoc.store.records import Channel
from byoc.tenancy import default_tenant

__all__ = ["DemoError", "DemoPorts", "run_demo", "watering_hole"]

CHANNEL_ID = "chat_watering_hole"
WEB_CHANNEL_ID = "chat_watering_hole_web"
DEMO_PAGE = Path(__file__).parent / "static" / "demo" / "watering-hole.html"


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def watering_hole(
    secret: str, inbox: asyncio.Queue[dict[str, Any]], middleware_url: str
) -> FastAPI:
    """The platform side: its web page with the chat widget, and a webhook receiver that
    verifies each webhook's signature, prints it and queues it."""
    app = FastAPI(title="The Watering Hole (demo platform)")
    page = (
        DEMO_PAGE.read_text(encoding="utf-8")
        .replace("{{MIDDLEWARE}}", html.escape(middleware_url))
        .replace("{{CHANNEL}}", WEB_CHANNEL_ID)
    )

    @app.get("/", response_class=HTMLResponse)
    async def home() -> str:
        return page

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        body = await request.body()
        try:
            verify_webhook(secret, request.headers, body, tolerance_seconds=300)
        except Unauthenticated as exc:
            say(f"platform refused a webhook: {exc}")
            return Response(status_code=401)
        event = json.loads(body)
        if event["type"] == "message.created":
            author = (event["message"].get("author") or {}).get("firstName") or "agent"
            say(f"Watering Hole shows {author}: {event['message']['text']!r}")
        else:
            say(f"Watering Hole got {event['type']} on {event['threadId']}")
        await inbox.put(event)
        return Response(status_code=204)

    return app


async def _prepare(settings: Settings, client: tuple[str, str], mapped: list[Channel]) -> None:
    def prepare(conn: Connection) -> None:
        tenants.upsert_tenant(conn, tenant := default_tenant(settings))
        clients.insert_client(conn, client[0], "demo", hash_secret(client[1]), tenant.id)
        for channel in mapped:
            if channels.get_channel(conn, channel.id) is None:
                channels.insert_channel(conn, channel)
            else:  # a new demo run gets fresh secrets and the ports of this run
                channels.update_channel(
                    conn,
                    channel.id,
                    secret=channel.secret,
                    webhook_url=channel.webhook_url,
                    settings=channel.settings,
                )

    db = Database(settings.database_url)
    try:
        await upgrade(db)
        await db.run_write(prepare)
    finally:
        await db.close()


def _fresh_store(data_dir: Path) -> Path:
    database = data_dir / "byoc.db"
    for leftover in (database, *(data_dir / f"byoc.db{s}" for s in ("-wal", "-shm", "-journal"))):
        leftover.unlink(missing_ok=True)
    return database


def _start_emulator(ports: DemoPorts, client: tuple[str, str]) -> subprocess.Popen[bytes]:
    box = f"http://127.0.0.1:{ports.middleware}/integration/box"
    integration = (
        f"id=demo,box_url={box},authorization_url={box}/1.0/token,"
        f"client_id={client[0]},client_secret={client[1]},reply_style=dfo3"
    )
    command = [
        sys.executable, "-m", "cxone_emulator", "serve",
        "--port", str(ports.emulator),
        "--integration", integration,
        "--channel", f"id={CHANNEL_ID},integration=demo,name=The Watering Hole",
        "--channel", f"id={WEB_CHANNEL_ID},integration=demo,name=The Watering Hole web chat",
        "--log-level", "warning",
    ]  # fmt: skip
    try:
        return subprocess.Popen(command)  # noqa: S603 - our own interpreter and arguments
    except FileNotFoundError as exc:  # pragma: no cover - python itself is missing
        raise SystemExit(f"cannot start the CXone emulator: {exc}") from exc


async def _wait_until_up(
    url: str, within: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + within
    async with HttpClient(max_connections=1) as http:
        while True:
            try:
                if (await http.request("GET", url, timeout=1.0)).status_code < 500:
                    return
            except HttpError:
                pass
            if process is not None and process.poll() is not None:
                raise DemoError(
                    f"the CXone emulator exited with status {process.returncode} before {url} "
                    f"answered (is its port busy? choose another with {PORT_FLAGS['emulator']})"
                )
            if time.monotonic() > deadline:
                raise DemoError(f"{url} did not come up within {within:.0f}s")
            await asyncio.sleep(0.1)


def _succeeded(answer: HttpResponse) -> HttpResponse:
    if not answer.is_success:
        request = answer.request
        raise DemoError(
            f"{request.method} {request.url} answered {answer.status_code}: {answer.text[:200]}"
        )
    return answer


async def _play_exchange(
    ports: DemoPorts, secret: str, inbox: asyncio.Queue[dict[str, Any]]
) -> None:
    middleware = f"http://127.0.0.1:{ports.middleware}"
    emulator = f"http://127.0.0.1:{ports.emulator}"
    payload = {
        "id": "wh-" + secrets.token_hex(4),
        "customer": {"id": "wh-user-42", "firstName": "Ada", "lastName": "Lovelace"},
        "text": "Hi! My order from The Watering Hole has not arrived.",
    }
    body = json.dumps(payload).encode()
    async with HttpClient(max_connections=4) as http:
        say(f"customer Ada writes: {payload['text']!r}")
        accepted = _succeeded(
            await http.request(
                "POST",
                f"{middleware}/api/v1/channels/{CHANNEL_ID}/messages",
                content=body,
                headers={"Content-Type": "application/json", **signed_headers(secret, body)},
                timeout=5.0,
            )
        )
        thread = accepted.json()["threadId"]
        say(f"middleware stored it durably (thread {thread}) and queued it for CXone")
        contact = None
        for _ in range(100):
            contacts = (
                await http.request(
                    "GET",
                    f"{emulator}/emulator/contacts",
                    params={"channelId": CHANNEL_ID},
                    timeout=5.0,
                )
            ).json()["data"]
            contact = next((c for c in contacts if c["threadIdOnExternalPlatform"] == thread), None)
            if contact:
                break
            await asyncio.sleep(0.1)
        if contact is None:
            raise DemoError("the message never reached the CXone emulator")
        say(f"CXone (emulator) routed it to an agent as contact {contact['id']}")
        _succeeded(
            await http.request(
                "POST",
                f"{emulator}/emulator/contacts/{contact['id']}/reply",
                json={
                    "text": "Hello Ada, I'm sorry about that. Let me check.",
                    "agent": {"firstName": "Sam"},
                },
                timeout=5.0,
            )
        )
        say("agent Sam replied in CXone; CXone called the middleware (401 → token → retry)")
        await asyncio.wait_for(inbox.get(), timeout=10)


async def _play_widget_exchange(ports: DemoPorts) -> None:
    """The same story through the web chat widget's socket, as the demo page's widget does."""
    middleware = f"ws://127.0.0.1:{ports.middleware}/webchat/v1/ws"
    emulator = f"http://127.0.0.1:{ports.emulator}"
    origin = f"http://127.0.0.1:{ports.platform}"
    async with websockets.connect(middleware, origin=Origin(origin)) as ws:
        hello = {"type": "hello", "channel": WEB_CHANNEL_ID, "visitorId": secrets.token_hex(16)}
        await ws.send(json.dumps(hello))
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            raise DemoError(f"the widget socket refused the demo: {welcome}")
        await ws.send(
            json.dumps({"type": "message", "clientId": "demo-1", "text": "Hello from the widget!"})
        )
        thread = None
        while thread is None:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ack":
                thread = frame["message"]["threadId"]
        say(f"a visitor wrote in the web chat widget (thread {thread})")
        async with HttpClient(max_connections=4) as http:
            contact = None
            for _ in range(100):
                contacts = (
                    await http.request(
                        "GET",
                        f"{emulator}/emulator/contacts",
                        params={"channelId": WEB_CHANNEL_ID},
                        timeout=5.0,
                    )
                ).json()["data"]
                contact = next(
                    (c for c in contacts if c["threadIdOnExternalPlatform"] == thread), None
                )
                if contact:
                    break
                await asyncio.sleep(0.1)
            if contact is None:
                raise DemoError("the widget's message never reached the CXone emulator")
            _succeeded(
                await http.request(
                    "POST",
                    f"{emulator}/emulator/contacts/{contact['id']}/reply",
                    json={
                        "text": "Welcome to The Watering Hole chat!",
                        "agent": {"firstName": "Sam"},
                    },
                    timeout=5.0,
                )
            )
        async with asyncio.timeout(10):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "message" and frame["message"]["sender"] == "agent":
                    say(f"the widget shows Sam: {frame['message']['text']!r}")
                    return


async def run_demo(ports: DemoPorts, data_dir: Path, *, once: bool) -> int:
    """Play the demo; 0 when it ran, 1 (with one line on stderr) when it could not."""
    try:
        middleware_socket, platform_socket = take_ports(ports)
    except DemoError as exc:
        print(f"byoc demo: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        return await _run(ports, data_dir, once=once, sockets=(middleware_socket, platform_socket))
    except DemoError as exc:
        print(f"byoc demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        middleware_socket.close()
        platform_socket.close()


async def _run(
    ports: DemoPorts,
    data_dir: Path,
    *,
    once: bool,
    sockets: tuple[socket.socket, socket.socket],
) -> int:
    client = new_client_credentials()
    secret = secrets.token_urlsafe(24)
    database = _fresh_store(data_dir)
    settings = Settings(
        environment="development",
        database_url=f"sqlite:///{database}",
        public_url=f"http://127.0.0.1:{ports.middleware}",
        cxone_api_url=f"http://127.0.0.1:{ports.emulator}/dfo/3.0",
        cxone_token_url=f"http://127.0.0.1:{ports.emulator}/auth/token",
        outbox_poll_interval_seconds=0.5,
        outbound_allow_private="127.0.0.1/32",
        action_back_url_hosts="127.0.0.1",  # the emulator's console
    )
    channel = Channel(
        id=CHANNEL_ID,
        tenant_id="default",
        adapter=WEBHOOK,
        name="The Watering Hole",
        webhook_url=f"http://127.0.0.1:{ports.platform}/webhook",
        secret=secret,
        created_at=int(time.time() * 1000),
    )
    web_channel = Channel(
        id=WEB_CHANNEL_ID,
        tenant_id="default",
        adapter=WEBCHAT,
        name="The Watering Hole web chat",
        webhook_url=None,
        secret=secrets.token_urlsafe(24),
        created_at=int(time.time() * 1000),
        settings={
            "allowed_origins": [
                f"http://127.0.0.1:{ports.platform}",
                f"http://localhost:{ports.platform}",
            ],
            "title": "The Watering Hole",
        },
    )
    await _prepare(settings, client, [channel, web_channel])
    emulator = _start_emulator(ports, client)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    configs = [
        # The middleware as `byoc serve` runs it: header deadline, connection bound, keep-alive.
        server_config(create_app(settings), settings, host="127.0.0.1", port=ports.middleware),
        uvicorn.Config(
            watering_hole(secret, inbox, f"http://127.0.0.1:{ports.middleware}"),
            port=ports.platform,
            log_level="warning",
        ),
    ]
    servers = [uvicorn.Server(config) for config in configs]
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, sockets, strict=True)
    ]
    try:
        say(f"a fresh demo store in {data_dir} (the emulator starts empty too)")
        await _wait_until_up(
            f"http://127.0.0.1:{ports.emulator}/.well-known/openid-configuration",
            process=emulator,
        )
        await _wait_until_up(f"http://127.0.0.1:{ports.middleware}/healthz")
        await _wait_until_up(f"http://127.0.0.1:{ports.platform}/")
        say(f"CXone emulator     http://127.0.0.1:{ports.emulator}/console  (agent console)")
        say(f"middleware         http://127.0.0.1:{ports.middleware}/docs   (API docs)")
        say(f"Watering Hole      http://127.0.0.1:{ports.platform}/         (open it and chat)")
        await _play_exchange(ports, secret, inbox)
        say("the agent's reply reached the customer's platform: the round trip works")
        await _play_widget_exchange(ports)
        if once:
            return 0
        say("still running: answer from the agent console, Ctrl-C to stop")
        await asyncio.gather(*tasks)
        return 0
    finally:
        for server in servers:
            server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
