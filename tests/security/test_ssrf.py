"""Outgoing requests to addresses someone else chose never reach this machine or its network.

Each target is a real TCP server on loopback that counts the connections it accepts: a refused
request must leave it at zero, while the same request with the target allowed reaches it (so a
zero is the guard's doing, not a server that was never there).
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from byoc.http import HttpClient, HttpRefusedAddress, HttpRequest, HttpResponseTooLarge
from byoc.outbound import OutboundPolicy, RefusedAddress
from byoc.outbound_resolver import VettingResolver
from byoc.settings import Settings, settings_error_lines
from tests.support.action_pages import channel_id_of, form_token, start_pages
from tests.support.cli import INTEGRATION_ID, run_cli
from tests.support.emulator import Emulator
from tests.support.stack import running_stack
from tests.support.waiting import wait_for

LOOPBACK_ONLY = OutboundPolicy.from_setting("127.0.0.1/32")


class Target:
    """A TCP server that counts connections and answers each with one fixed HTTP answer."""

    def __init__(self, host: str = "127.0.0.1", answer: bytes | None = None) -> None:
        self.connections = 0
        self._lock = threading.Lock()
        body = b"internal secret"
        self._answer = answer or (
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        target = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with target._lock:
                    target.connections += 1
                sock: socket.socket = self.request
                sock.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                sock.sendall(target._answer)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @contextmanager
    def running(self) -> Iterator[Target]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


class FixedResolver(VettingResolver):
    """A name server for names of our own: answers `names` from a table, like DNS would."""

    def __init__(self, names: dict[str, str]) -> None:
        self._names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        address = self._names[host]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


async def test_private_literals_and_names_are_refused_and_the_target_receives_nothing() -> None:
    with Target().running() as target:
        port = target.port
        urls = [
            f"http://127.0.0.1:{port}/",
            f"http://localhost:{port}/",
            f"http://[::ffff:127.0.0.1]:{port}/",
            f"http://0.0.0.0:{port}/",
            f"http://127.1:{port}/",
            f"http://2130706433:{port}/",
            f"http://0x7f.0.0.1:{port}/",
            f"http://[::1]:{port}/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://10.0.0.1/",
            "http://224.0.0.1/",
            "file:///etc/passwd",
            f"gopher://127.0.0.1:{port}/",
            "http:///nohost",
        ]
        async with HttpClient(guard=OutboundPolicy()) as http:
            for url in urls:
                with pytest.raises(HttpRefusedAddress):
                    await http.request("GET", url, timeout=3)
        assert target.connections == 0

        # The same target, allowed: reached (the zero above is the guard's).
        async with HttpClient(guard=LOOPBACK_ONLY) as http:
            answer = await http.request("GET", f"http://127.0.0.1:{port}/", timeout=3)
        assert answer.content == b"internal secret"
        assert target.connections == 1


async def test_a_name_resolving_to_a_private_address_is_refused_at_connect() -> None:
    with Target().running() as target:
        resolver = VettingResolver(OutboundPolicy(), inner=FixedResolver({"cdn.test": "127.0.0.1"}))
        async with HttpClient(guard=OutboundPolicy(), resolver=resolver) as http:
            with pytest.raises(HttpRefusedAddress, match="not a public address"):
                await http.request("GET", f"http://cdn.test:{target.port}/", timeout=3)
        assert target.connections == 0
        # The connection goes to the address the resolver checked, not to a second lookup.
        allowed = VettingResolver(LOOPBACK_ONLY, inner=FixedResolver({"cdn.test": "127.0.0.1"}))
        async with HttpClient(guard=LOOPBACK_ONLY, resolver=allowed) as http:
            answer = await http.request("GET", f"http://cdn.test:{target.port}/", timeout=3)
        assert answer.status_code == 200
        assert target.connections == 1


async def test_the_proxys_name_is_trusted_for_the_proxy_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The environment's proxy, on a private address, is resolved unchecked; its host name on
    another port, or as a request's origin, is vetted like any other name."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:8080")  # no scheme: http
    monkeypatch.setenv("NO_PROXY", "proxy.internal")  # so the origin below is reached directly
    monkeypatch.setenv("FTP_PROXY", "http://proxy.internal:2121")  # never used: not trusted
    with Target().running() as target:
        resolver = VettingResolver(
            OutboundPolicy(), inner=FixedResolver({"proxy.internal": "127.0.0.1"})
        )
        # Trusted from the environment above, as the client opens its session.
        async with HttpClient(guard=OutboundPolicy(), resolver=resolver) as http:
            with pytest.raises(HttpRefusedAddress, match="not a public address"):
                await http.request(
                    "GET", f"http://proxy.internal:{target.port}/latest/meta-data", timeout=3
                )
            for port in (3128, 8080):  # the proxies themselves
                assert (await resolver.resolve("proxy.internal", port))[0]["host"] == "127.0.0.1"
            with pytest.raises(RefusedAddress):
                await resolver.check_origin("proxy.internal", 3128)
            with pytest.raises(RefusedAddress):
                await resolver.resolve("proxy.internal", 2121)
        assert target.connections == 0


async def test_every_redirect_is_checked_again() -> None:
    inside = Target("127.0.0.2")
    with inside.running():
        to_inside = f"http://127.0.0.2:{inside.port}/latest/meta-data"
        redirect = (
            b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % to_inside.encode()
        )
        with Target(answer=redirect).running() as outside:
            async with HttpClient(guard=LOOPBACK_ONLY) as http:
                request = http.build_request("GET", outside.url + "/file.pdf")
                with pytest.raises(HttpRefusedAddress):
                    await http.send(_with(request, max_redirects=3), timeout=3)
            assert outside.connections == 1
    assert inside.connections == 0


async def test_redirects_and_answers_are_capped() -> None:
    loop = b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"
    with Target(answer=loop).running() as looping:
        async with HttpClient(guard=LOOPBACK_ONLY) as http:
            request = http.build_request("GET", looping.url + "/")
            answer = await http.send(_with(request, max_redirects=3), timeout=5)
        assert answer.status_code == 302
        assert looping.connections == 4  # the first request and three redirects
    big = b"x" * (2 * 1024 * 1024)
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
    with Target(answer=huge).running() as target:
        async with HttpClient(guard=LOOPBACK_ONLY) as http:
            with pytest.raises(HttpResponseTooLarge):
                await http.request("GET", target.url + "/", timeout=5)


def _with(request: HttpRequest, **changes: Any) -> HttpRequest:
    return replace(request, **changes)


def test_agent_attachment_on_a_private_address_is_not_fetched(
    tmp_path: Path, emulator: Emulator
) -> None:
    # The platform and the emulator are allowed (127.0.0.1); the "internal" service is not.
    inside = Target("127.0.0.2")
    with (
        inside.running(),
        running_stack(tmp_path, emulator, outbound_allow_private="127.0.0.1/32") as stack,
    ):
        accepted = stack.customer_says("send me the form")
        contact = stack.contact_for_thread(accepted["threadId"])
        internal = f"{inside.url}/latest/meta-data/iam"
        with stack.emulator.api_client() as api:
            temporary = api.post(
                "/attachments/temporary",
                json={"content": base64.b64encode(b"%PDF").decode(), "mimeType": "text/plain"},
            ).json()
        reply = stack.emulator.admin.post(
            f"/emulator/contacts/{contact['id']}/reply",
            json={
                "text": "here",
                "attachments": [
                    {"friendlyName": "creds.txt", "url": internal},
                    {"friendlyName": "form.pdf", "url": temporary["url"]},
                ],
            },
        )
        assert reply.status_code == 200, reply.text
        event = wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")[0]
        refused, fetched = event["message"]["attachments"]
        assert refused["url"] == internal  # not re-hosted: nothing of it was read
        assert fetched["url"].startswith(stack.url + "/webchat/v1/attachments/")
    assert inside.connections == 0


def test_webhook_to_a_private_address_is_never_called(tmp_path: Path, emulator: Emulator) -> None:
    # Nothing private allowed: the platform receiver on loopback must hear nothing.
    with running_stack(tmp_path, emulator, outbound_allow_private="") as stack:
        accepted = stack.customer_says("hello")
        contact = stack.contact_for_thread(accepted["threadId"])
        assert stack.agent_replies(contact["id"], "hi").status_code == 200
        dead = wait_for(lambda: stack.outbox("dead"), what="dead-lettered webhook")
        assert "not a public address" in (dead[0]["last_error"] or "")
        assert stack.platform.events == []
        assert stack.platform.bad_signatures == 0


def test_production_refuses_a_private_allow_list_without_the_second_flag() -> None:
    strong: dict[str, Any] = {
        "environment": "production",
        "public_url": "https://byoc.example.com",
        "token_signing_key": "k" + base64.b64encode(bytes(range(40))).decode(),
        "cxone_api_url": "https://api-de-na1.niceincontact.com/dfo/3.0",
        "cxone_token_url": "https://na1.nice-incontact.com/authentication/v1/token",
        "cxone_access_key_id": "AKIA" + "Q7" * 10,
        "cxone_access_key_secret": "s" + base64.b64encode(bytes(range(1, 41))).decode(),
        "cxone_client_id": "app-" + "Zx9" * 5,
        "cxone_client_secret": "c" + base64.b64encode(bytes(range(2, 42))).decode(),
        "ops_port": 8081,
    }
    Settings(**strong)  # the baseline starts
    with pytest.raises(ValidationError) as refused:
        Settings(**strong, outbound_allow_private="10.0.0.0/8")
    (line,) = settings_error_lines(refused.value)
    assert line.startswith("BYOC_OUTBOUND_ALLOW_PRIVATE lets"), line
    meant = Settings(
        **strong, outbound_allow_private="10.0.0.0/8", outbound_allow_private_in_production=True
    )
    assert OutboundPolicy.of(meant).address_problem(ipaddress.ip_address("10.1.2.3")) is None
    with pytest.raises(ValueError, match="not an IP network"):
        Settings(outbound_allow_private="127.0.0.1/32,intranet")


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`byoc ARGS` with no private address allowed (the command's own `main()`)."""
    return run_cli(list(args), {"BYOC_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"})


def test_channels_add_refuses_unusable_webhook_urls(tmp_path: Path) -> None:
    cases = {
        ("--webhook-url", "notaurl"): "must be an http or https URL",
        (): "--webhook-url is required",
        ("--webhook-url", "http://169.254.169.254/latest"): "not a public address",
        ("--webhook-url", "http://127.0.0.1:8080/hook"): "not a public address",
        ("--webhook-url", "http://[::ffff:127.0.0.1]/"): "not a public address",
        ("--webhook-url", "ftp://platform.example/hook"): "must be an http or https URL",
    }
    for extra, message in cases.items():
        result = _cli(tmp_path, "channels", "add", "--id", "chat_x", *extra)
        assert result.returncode == 2, (extra, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (extra, result.stderr)
        assert message in lines[0], (extra, result.stderr)
    listed = _cli(tmp_path, "channels", "list", "--json")
    assert listed.stdout.strip() == "[]", listed.stderr
    bad_json = _cli(
        tmp_path, "channels", "add", "--id", "chat_w", "--adapter", "webchat",
        "--settings", "{bad json",
    )  # fmt: skip
    assert bad_json.returncode == 2
    assert bad_json.stderr.startswith("byoc: --settings is not JSON"), bad_json.stderr
    created = _cli(tmp_path, "channels", "create", "--name", "X", "--integration-id", "i",
                   "--adapter", "webchat", "--settings", "{bad json")  # fmt: skip
    assert created.returncode == 2
    assert "--settings is not JSON" in created.stderr


def test_action_page_refuses_a_private_webhook_url(tmp_path: Path, emulator: Emulator) -> None:
    with start_pages(tmp_path, emulator, cxone_channel_integration_id=INTEGRATION_ID) as pages:
        page = pages.open_action()
        assert page.status_code == 200, page.text
        channel_id = channel_id_of(page)
        refused = pages.http.post(
            "/integration/action",
            data={
                "form_token": form_token(page),
                "name": "Probe",
                "adapter": "webhook",
                "webhook_url": "http://169.254.169.254/latest/meta-data/",
            },
        )
        assert refused.status_code == 422, refused.text
        assert "not a public address" in refused.text
        assert pages.local_channel(channel_id) is None
        assert channel_id not in pages.emulator_channels()
