"""Request ids echoed over HTTP and carried, with the channel id, by JSON log lines."""

from __future__ import annotations

import contextvars
import io
import logging
from typing import Any

import pytest

from byoc.ops.logging import UVICORN_LOGGERS, MessageText, bind, configure, unconfigure
from byoc.settings import Settings
from tests.support import loopback
from tests.support.logs import lines, restore_logging
from tests.support.stack import Stack
from tests.support.waiting import wait_for

__all__ = ["restore_logging"]  # a fixture


def test_request_id_is_echoed_or_made_up(stack: Stack) -> None:
    with loopback.client(base_url=stack.url, timeout=5) as client:
        given = client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.42"})
        assert given.headers["x-request-id"] == "lb-7f3a.42"
        made_up = client.get("/healthz")
        assert len(made_up.headers["x-request-id"]) == 24
        assert made_up.headers["x-request-id"] != client.get("/healthz").headers["x-request-id"]
        # A header that could forge log lines is replaced, not echoed.
        forged = client.get("/healthz", headers={"X-Request-Id": 'x" "level": "error'})
        assert forged.headers["x-request-id"] != 'x" "level": "error'
        # Errors carry one too.
        missing = client.get("/nowhere", headers={"X-Request-Id": "r-404"})
        assert missing.status_code == 404
        assert missing.headers["x-request-id"] == "r-404"


def test_json_lines_carry_request_and_channel_ids(stack: Stack, restore_logging: None) -> None:
    stream = io.StringIO()
    handler = configure(Settings(log_level="info"), stream=stream)
    try:
        response = stack.signed(
            "POST",
            f"/api/v1/channels/{stack.channel_id}/messages",
            {"customer": {"id": "wh-9", "firstName": "Ada"}, "text": "my card is 4111"},
        )
        assert response.status_code == 202
        request_id = response.headers["x-request-id"]

        def access_line() -> dict[str, Any] | None:
            for entry in lines(stream):
                if entry["logger"] == "uvicorn.access" and entry.get("request_id") == request_id:
                    return entry
            return None

        entry = wait_for(access_line, what="the access log line of the request")
    finally:
        unconfigure(handler)
    assert entry["channel_id"] == stack.channel_id
    assert entry["level"] == "info"
    assert entry["ts"].endswith("Z")
    assert f"/api/v1/channels/{stack.channel_id}/messages" in entry["message"]
    assert "4111" not in stream.getvalue()


@pytest.mark.parametrize("enabled", [False, True])
def test_message_text_is_redacted_unless_enabled(restore_logging: None, enabled: bool) -> None:
    stream = io.StringIO()
    handler = configure(Settings(log_level="debug", log_message_text=enabled), stream=stream)

    def work() -> None:
        log = logging.getLogger("byoc.tests.ops")
        bind(conversation_id="conv_1", channel_id="chat_1")
        log.info("customer said %s on %s", MessageText("hello there"), "chat_1")
        log.info("agent answered", extra={"text": "secret plan", "attempt": 2})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it broke")

    try:
        contextvars.copy_context().run(work)  # the bound ids stay in this test
    finally:
        unconfigure(handler)
    said, answered, broke = lines(stream)
    assert said["conversation_id"] == "conv_1"
    assert said["channel_id"] == "chat_1"
    assert answered["attempt"] == 2
    if enabled:
        assert said["message"] == "customer said hello there on chat_1"
        assert answered["text"] == "secret plan"
    else:
        assert said["message"] == "customer said [redacted: 11 chars] on chat_1"
        assert answered["text"] == "[redacted: 11 chars]"
    assert broke["level"] == "error"
    assert "ValueError: boom" in broke["exception"]


def test_configure_again_replaces_only_its_own_handler(restore_logging: None) -> None:
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    first = configure(Settings(), stream=io.StringIO())
    second = configure(Settings(), stream=io.StringIO())
    handlers = logging.getLogger().handlers
    assert foreign in handlers
    assert second in handlers
    assert first not in handlers
    unconfigure(second)
    logging.getLogger().removeHandler(foreign)
    for name in UVICORN_LOGGERS:
        assert logging.getLogger(name).propagate
    assert logging.getLogger("httpx").level == logging.WARNING


def test_outbox_log_lines_name_the_conversation(stack: Stack, restore_logging: None) -> None:
    stream = io.StringIO()
    handler = configure(Settings(log_level="info"), stream=stream)
    try:
        accepted = stack.customer_says("hello")
        contact = stack.contact_for_thread(accepted["threadId"])
        stack.platform.fail_with = 400  # the platform refuses the reply: dead-lettered, logged
        assert stack.agent_replies(contact["id"], "a reply").status_code == 200

        def dead_letter_line() -> dict[str, Any] | None:
            for entry in lines(stream):
                if entry["logger"] == "byoc.outbox.worker" and "dead-lettered" in entry["message"]:
                    return entry
            return None

        entry = wait_for(dead_letter_line, what="the dead-letter log line")
    finally:
        unconfigure(handler)
    assert entry["level"] == "error"
    assert entry["conversation_id"] == accepted["threadId"]
