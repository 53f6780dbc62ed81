"""The same flows on PostgreSQL (the scale-out store), in a database made for this module."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.emulator import Emulator
from tests.support.stack import running_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres


def test_round_trip_on_postgres(tmp_path: Path, emulator: Emulator, postgres_url: str) -> None:
    with running_stack(tmp_path, emulator, database_url=postgres_url) as stack:
        accepted = stack.customer_says("hello from postgres")
        contact = stack.contact_for_thread(accepted["threadId"])
        reply = stack.agent_replies(contact["id"], "answered from postgres")
        assert reply.status_code == 200, reply.text
        event = wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")[0]
        assert event["message"]["text"] == "answered from postgres"


def test_outage_keeps_order_on_postgres(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    with running_stack(tmp_path, emulator, database_url=postgres_url) as stack:
        warm_up = stack.customer_says("warm up", customer="zed")
        stack.contact_for_thread(warm_up["threadId"])
        emulator.admin.put("/emulator/faults", json={"outageSeconds": 1.0, "rules": []})
        sent: dict[str, list[str]] = defaultdict(list)
        for i in range(6):
            for customer in ("pg-a", "pg-b"):
                accepted = stack.customer_says(f"{customer} {i}", customer=customer)
                sent[accepted["threadId"]].append(accepted["id"])
        wait_for(lambda: not stack.outbox(), timeout=30, what="outbox to drain")
        delivered: dict[str, list[str]] = defaultdict(list)
        for call in emulator.requests(path_contains="/messages", method="POST")[1:]:
            if call["status"] == 200:
                body = call["requestBody"]
                delivered[body["thread"]["idOnExternalPlatform"]].append(
                    body["idOnExternalPlatform"]
                )
        assert delivered == sent
