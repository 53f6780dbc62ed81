"""PostgreSQL out of reach while the middleware runs (a TCP relay in front of the server,
closed: connects are refused and live connections cut): every request that needs the store
answers 503 `store-unavailable` with Retry-After, the readiness probe says not ready, nothing
is half-stored, and service resumes by itself when the server is back."""

from __future__ import annotations

from pathlib import Path

from tests.support.emulator import Emulator
from tests.support.postgres import fresh_database
from tests.support.relay import TcpRelay
from tests.support.stack import running_stack
from tests.support.waiting import wait_for


def test_an_outage_answers_503_and_service_resumes_when_the_database_is_back(
    tmp_path: Path, emulator: Emulator
) -> None:
    with (
        fresh_database() as url,
        TcpRelay(url) as relay,
        running_stack(tmp_path, emulator, database_url=relay.url) as stack,
    ):
        first = stack.customer_says("before the outage")
        stack.contact_for_thread(first["threadId"])
        transcript = f"/api/v1/channels/{stack.channel_id}/threads/{first['threadId']}/messages"

        relay.down()
        message = {"customer": {"id": "wh-user-1"}, "text": "during", "threadId": first["threadId"]}
        for method, path, body in [
            ("GET", transcript, None),
            ("POST", f"/api/v1/channels/{stack.channel_id}/messages", message),
        ]:
            answer = stack.signed(method, path, body)
            assert answer.status_code == 503, (method, path, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["type"] == "urn:byoc:problem:store-unavailable"
            assert answer.headers["retry-after"] == "1"
        probe = stack.signed("GET", "/readyz")
        assert probe.status_code == 503
        assert probe.json()["checks"]["store"] == "unreachable"  # no address, database or SQL
        assert str(relay.port) not in probe.text

        relay.up()
        wait_for(lambda: stack.signed("GET", transcript).status_code == 200, what="service back")
        after = stack.customer_says("after the outage", threadId=first["threadId"])
        # Rows whose settle the outage failed wait out their lease, longer on a loaded machine.
        wait_for(lambda: not stack.outbox(), what="the outbox drained", timeout=60)
        texts = [m["text"] for m in stack.signed("GET", transcript).json()["messages"]]
        assert texts == ["before the outage", "after the outage"]  # "during" was not stored
        contact = stack.contact_for_thread(first["threadId"])
        detail = emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
        assert [m["idOnExternalPlatform"] for m in detail["messages"]] == [first["id"], after["id"]]
