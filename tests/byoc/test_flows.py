"""End to end over loopback: platform ⇄ middleware ⇄ CXone emulator."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.stack import Stack, box_token, running_stack
from tests.support.waiting import wait_for


def test_customer_message_reaches_cxone_with_every_required_field(stack: Stack) -> None:
    accepted = stack.customer_says("Hello from the Watering Hole")
    assert accepted["status"] == "queued"
    contact = stack.contact_for_thread(accepted["threadId"])
    creates = wait_for(
        lambda: stack.emulator.requests(path_contains="/messages", method="POST"),
        what="create-message call",
    )
    body = creates[-1]["requestBody"]
    assert creates[-1]["status"] == 200
    assert body["idOnExternalPlatform"] == accepted["id"]
    assert body["direction"] == "inbound"
    assert body["thread"]["idOnExternalPlatform"] == accepted["threadId"]
    assert body["messageContent"] == {
        "type": "TEXT",
        "payload": {"text": "Hello from the Watering Hole"},
    }
    assert body["authorEndUserIdentity"]["idOnExternalPlatform"] == accepted["customerId"]
    assert body["authorEndUserIdentity"]["firstName"] == "Ada"
    assert body["createdAtWithMilliseconds"].endswith("Z")
    assert contact["status"] == "new"


def test_agent_reply_reaches_platform_after_token_dance(stack: Stack) -> None:
    accepted = stack.customer_says("I need help")
    contact = stack.contact_for_thread(accepted["threadId"])
    reply = stack.agent_replies(contact["id"], "Hi Ada, how can I help?")
    assert reply.status_code == 200, reply.text
    platform_id = reply.json()["message"]["idOnExternalPlatform"]
    assert platform_id.startswith("msg_")

    calls = stack.emulator.callbacks()
    statuses = [(c["url"].rsplit("/box", 1)[-1], c["status"]) for c in calls]
    assert statuses[0] == (f"/2.0/channel/{stack.channel_id}/outbound", 401)
    assert statuses[1] == ("/1.0/token", 200)
    assert statuses[2] == (f"/2.0/channel/{stack.channel_id}/outbound", 200)

    event = wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")[0]
    assert event["message"]["text"] == "Hi Ada, how can I help?"
    assert event["message"]["id"] == platform_id
    assert event["threadId"] == accepted["threadId"]
    assert event["customer"]["externalId"] == "wh-user-1"


def test_legacy_reply_style(tmp_path: Path, emulator: Emulator) -> None:
    with running_stack(tmp_path, emulator, reply_style="legacy") as stack:
        accepted = stack.customer_says("legacy please")
        contact = stack.contact_for_thread(accepted["threadId"])
        reply = stack.agent_replies(contact["id"], "legacy answer")
        assert reply.status_code == 200, reply.text
        urls = [c["url"] for c in stack.emulator.callbacks() if c["status"] == 200]
        assert any("/1.0/posts/" in u and u.endswith("/messages") for u in urls)
        event = wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")[0]
        assert event["message"]["text"] == "legacy answer"
        assert event["message"]["id"] == reply.json()["message"]["idOnExternalPlatform"]


def test_agent_initiated_outbound_opens_a_new_thread(stack: Stack) -> None:
    first = stack.customer_says("earlier conversation")
    stack.contact_for_thread(first["threadId"])
    response = stack.emulator.admin.post(
        f"/emulator/channels/{stack.channel_id}/outbound",
        json={"customerId": first["customerId"], "text": "A direct message from your agent"},
    )
    assert response.status_code == 200, response.text
    validation = [c for c in stack.emulator.callbacks() if "recipients/validation" in c["url"]]
    assert validation[-1]["status"] == 200
    event = wait_for(lambda: stack.platform.of_type("message.created"), what="outbound webhook")[0]
    assert event["message"]["text"] == "A direct message from your agent"
    new_thread = event["threadId"]
    assert new_thread != first["threadId"]
    contact = response.json()["contact"]
    assert contact["threadIdOnExternalPlatform"] == new_thread

    # The customer's answer continues the thread the agent opened.
    answer = stack.customer_says("thanks!", threadId=new_thread)
    assert answer["threadId"] == new_thread


def test_outbound_to_unknown_customer_is_refused(stack: Stack) -> None:
    response = stack.emulator.admin.post(
        f"/emulator/channels/{stack.channel_id}/outbound",
        json={"customerId": "cus_nobody", "text": "hello?"},
    )
    assert response.status_code == 422, response.text
    validation = [c for c in stack.emulator.callbacks() if "recipients/validation" in c["url"]]
    assert validation[-1]["status"] == 400
    assert validation[-1]["responseBody"]["errorCode"] == "outboundValidationFailed"
    assert stack.platform.events == []


def test_typing_both_ways(stack: Stack) -> None:
    accepted = stack.customer_says("hello")
    contact = stack.contact_for_thread(accepted["threadId"])
    # The emulator holds the contact before the middleware has recorded it, and typing before
    # that is shown to nobody.
    wait_for(
        lambda: stack.conversation(accepted["threadId"]).de_contact_id is not None,
        what="the contact recorded",
    )
    typing = stack.signed(
        "POST",
        f"/api/v1/channels/{stack.channel_id}/typing",
        {"threadId": accepted["threadId"], "typing": True},
    )
    assert typing.status_code == 202, typing.text
    actions = wait_for(
        lambda: stack.emulator.requests(path_contains="/sender-actions"), what="sender action"
    )
    assert actions[-1]["requestBody"] == {"action": "isTypingOn"}
    assert actions[-1]["path"].endswith(f"/threads/{accepted['threadId']}/sender-actions")

    agent = stack.emulator.admin.post(
        f"/emulator/contacts/{contact['id']}/typing", json={"typing": True}
    )
    assert agent.status_code == 200, agent.text
    event = wait_for(lambda: stack.platform.of_type("agent.typing"), what="agent typing")[0]
    assert event["typing"] is True
    assert event["threadId"] == accepted["threadId"]


def test_receipts_reach_cxone(stack: Stack) -> None:
    accepted = stack.customer_says("hello")
    contact = stack.contact_for_thread(accepted["threadId"])
    reply = stack.agent_replies(contact["id"], "hi")
    message_id = reply.json()["message"]["idOnExternalPlatform"]
    for status in ("delivered", "seen"):
        response = stack.signed(
            "POST",
            f"/api/v1/channels/{stack.channel_id}/receipts",
            {"messageId": message_id, "status": status},
        )
        assert response.status_code == 202, response.text
    puts = wait_for(
        lambda: [
            r for r in stack.emulator.requests(path_contains="/status") if r["method"] == "PUT"
        ][1:],
        what="two status updates",
    )
    statuses = [
        r["requestBody"]["status"] for r in stack.emulator.requests(path_contains="/status")
    ]
    assert statuses == ["delivered", "seen"]
    assert puts[-1]["path"].endswith(f"/messages/{message_id}/status")
    detail = stack.emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
    agent_message = next(m for m in detail["messages"] if m["idOnExternalPlatform"] == message_id)
    assert agent_message["status"] == "seen"


def test_repeated_platform_message_id_is_stored_and_sent_once(stack: Stack) -> None:
    first = stack.customer_says("only once", id="wh-msg-1")
    second = stack.customer_says("only once", id="wh-msg-1")
    assert second["duplicate"] is True
    assert second["id"] == first["id"]
    stack.contact_for_thread(first["threadId"])
    wait_for(lambda: not stack.outbox(), what="empty outbox")
    creates = stack.emulator.requests(path_contains="/messages", method="POST")
    assert [c["requestBody"]["idOnExternalPlatform"] for c in creates] == [first["id"]]


def test_agent_attachments_are_kept_by_the_middleware(stack: Stack) -> None:
    import base64

    accepted = stack.customer_says("can you send me the form?")
    contact = stack.contact_for_thread(accepted["threadId"])
    content = b"%PDF-1.4 the form"
    with stack.emulator.api_client() as api:
        temporary = api.post(
            "/attachments/temporary",
            json={"content": base64.b64encode(content).decode(), "mimeType": "application/pdf"},
        ).json()
    reply = stack.emulator.admin.post(
        f"/emulator/contacts/{contact['id']}/reply",
        json={
            "text": "here it is",
            "attachments": [{"friendlyName": "form.pdf", "url": temporary["url"]}],
        },
    )
    assert reply.status_code == 200, reply.text
    event = wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")[0]
    kept = event["message"]["attachments"][0]
    assert kept["url"].startswith(stack.url + "/webchat/v1/attachments/")
    assert kept["friendlyName"] == "form.pdf"
    fetched = loopback.get(kept["url"])
    assert fetched.content == content
    assert fetched.headers["content-type"] == "application/pdf"
    transcript = stack.signed(
        "GET", f"/api/v1/channels/{stack.channel_id}/threads/{accepted['threadId']}/messages"
    ).json()
    assert transcript["messages"][-1]["attachments"][0]["url"] == kept["url"]


class _SlowFiles(http.server.BaseHTTPRequestHandler):
    """Every GET answers a small PDF after `DELAY` seconds, and is counted."""

    DELAY = 0.4
    served: list[str] = []

    def do_GET(self) -> None:
        self.served.append(self.path)
        time.sleep(self.DELAY)
        body = b"%PDF-1.4 slow"
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_slow_agent_attachments_do_not_hold_back_the_reply(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Twelve attachments, each answering in 0.4 s, with the delivery cut at 2 s (half a 4 s
    lease; one after another they take 4 s): the first ten are fetched at once and kept, the
    other two keep their links, and the reply is delivered once."""
    files = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SlowFiles)
    files.daemon_threads = True
    threading.Thread(target=files.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{files.server_address[1]}"
    quick: dict[str, Any] = {"outbox_lease_seconds": 4.0, "webhook_timeout_seconds": 1.8}
    try:
        with running_stack(tmp_path, emulator, idle_timeout_seconds=0, **quick) as stack:
            thread_id = stack.customer_says("the invoices, please")["threadId"]
            wait_for(lambda: not stack.outbox(), what="the message forwarded")
            links = [
                {"friendlyName": f"inv{i}.pdf", "url": f"{base}/inv{i}.pdf"} for i in range(12)
            ]
            answer = loopback.post(
                f"{stack.url}/integration/box/2.0/channel/{stack.channel_id}/outbound",
                headers={"Authorization": f"Bearer {box_token(stack)}"},
                json={
                    "thread": {"idOnExternalPlatform": thread_id},
                    "message": {"id": "de-invoices"},
                    "messageContent": {"type": "TEXT", "payload": {"text": "here they are"}},
                    "attachments": links,
                },
            )
            assert answer.status_code == 200, answer.text
            event = wait_for(lambda: stack.platform.of_type("message.created"), what="webhook")
            wait_for(lambda: not stack.outbox(), what="the outbox drained")
            assert len(stack.platform.of_type("message.created")) == 1
            delivered = event[0]["message"]["attachments"]
            kept = [a["url"].startswith(stack.url) for a in delivered]
            assert kept == [True] * 10 + [False] * 2
            assert [a["url"] for a in delivered[10:]] == [link["url"] for link in links[10:]]
            assert sorted(_SlowFiles.served) == sorted(f"/inv{i}.pdf" for i in range(10))
    finally:
        files.shutdown()
        files.server_close()
