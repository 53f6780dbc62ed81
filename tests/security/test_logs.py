"""Capabilities never reach the log: attachment-link tokens and signed query strings."""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from byoc.ops.logging import configure, unconfigure
from byoc.settings import Settings
from byoc.store import Database, StoreError, messages
from tests.support import loopback, seed
from tests.support.emulator import Emulator
from tests.support.logs import lines, restore_logging
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_for

__all__ = ["restore_logging"]  # a fixture


@pytest.fixture
def stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    with running_stack(tmp_path, emulator) as running:
        yield running


def test_capabilities_never_reach_the_log(stack: Stack, restore_logging: None) -> None:
    stream = io.StringIO()
    handler = configure(Settings(log_level="info"), stream=stream)
    try:
        with loopback.client(base_url=stack.url, timeout=5) as client:
            response = client.get(
                "/webchat/v1/attachments/att_1/capability-9f8e7d?download=secret-value-1",
                headers={"X-Request-Id": "scrub-1"},
            )
        assert response.status_code in (401, 403, 404)

        def access_line() -> dict[str, Any] | None:
            for entry in lines(stream):
                if entry["logger"] == "uvicorn.access" and entry.get("request_id") == "scrub-1":
                    return entry
            return None

        entry = wait_for(access_line, what="the access log line of the request")
        logging.getLogger("byoc.test").warning(
            "agent attachment %s answered %s; link kept",
            "https://bucket.example/a.png?X-Amz-Credential=AKIA123&X-Amz-Signature=deadbeef99",
            403,
            extra={"url": "https://bucket.example/b.png?X-Amz-Signature=cafebabe77"},
        )
    finally:
        unconfigure(handler)
    assert "/webchat/v1/attachments/att_1/[redacted]" in entry["message"]
    assert "color_message" not in entry
    text = stream.getvalue()
    for secret in ("capability-9f8e7d", "secret-value-1", "AKIA123", "deadbeef99", "cafebabe77"):
        assert secret not in text
    assert "X-Amz-Signature=[redacted]" in text
    assert "\x1b[" not in text


async def test_a_store_error_holds_no_value_bound_to_its_statement(db: Database) -> None:
    """A store error may reach a log line with its traceback: the values bound to the failed
    statement (here a customer's message text) are not in it, on either database."""
    secret = "pin 4711"

    def stored_twice(conn: Connection) -> None:
        channel = seed.add_channel(conn)
        customer = seed.add_customer(conn, channel, "u-1")
        seeded = seed.add_conversation(conn, customer, created_at=1, ended_at=None, texts=[secret])
        first = messages.get_message(conn, seeded.message_ids[0])
        assert first is not None
        messages.insert_message(conn, first)

    with pytest.raises(StoreError) as refused:
        await db.run_write(stored_twice)
    logged = "".join(traceback.format_exception(refused.value))
    assert "duplicate key" in logged
    assert secret not in logged
