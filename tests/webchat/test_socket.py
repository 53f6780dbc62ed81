"""The widget protocol over a real WebSocket (no browser): docs/webchat-protocol.md."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from byoc.store import Database, conversations
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.servers import ThreadedServer
from tests.support.stack import box_token
from tests.support.waiting import wait_for
from tests.support.webchat import Webchat
from tests.support.widget import agent_reply, custom_webchat, widget

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


async def test_message_round_trip(webchat: Webchat) -> None:
    async with widget(webchat) as w:
        assert w.welcome["type"] == "welcome"
        assert w.welcome["conversation"] is None
        assert w.welcome["config"]["title"] == "Chat with us"
        ack = await w.say("hello from the widget")
        message = ack["message"]
        assert message["sender"] == "customer"
        await w.expect("status", messageId=message["id"], status="sent")
        contact = await asyncio.to_thread(webchat.contact_for_thread, message["threadId"])
        assert (
            contact["messages"][0]["messageContent"]["payload"]["text"] == "hello from the widget"
        )

        await asyncio.to_thread(
            agent_reply, webchat, message["threadId"], "hi there", agent={"firstName": "Sam"}
        )
        frame = await w.expect("message", message__sender="agent")
        assert frame["message"]["text"] == "hi there"
        assert frame["message"]["author"]["firstName"] == "Sam"


async def test_resume_replays_only_what_the_widget_missed(webchat: Webchat) -> None:
    visitor = secrets.token_hex(16)
    async with widget(webchat, visitorId=visitor) as w:
        first = (await w.say("one"))["message"]
        thread = first["threadId"]
        await asyncio.to_thread(agent_reply, webchat, thread, "two")
        second = (await w.expect("message", message__text="two"))["message"]
    # Offline: the agent writes twice.
    await asyncio.to_thread(agent_reply, webchat, thread, "three")
    await asyncio.to_thread(agent_reply, webchat, thread, "four")
    async with widget(webchat, visitorId=visitor, threadId=thread, afterSeq=second["seq"]) as w:
        assert [m["text"] for m in w.welcome["messages"]] == ["three", "four"]
        assert w.welcome["conversation"] == {"threadId": thread, "state": "open"}
    async with widget(webchat, visitorId=visitor) as w:  # a fresh page load gets everything
        assert [m["text"] for m in w.welcome["messages"]] == ["one", "two", "three", "four"]


async def test_resent_client_id_is_stored_once(webchat: Webchat) -> None:
    async with widget(webchat) as w:
        first = await w.say("only once", client_id="c-same")
        again = await w.say("only once", client_id="c-same")
        assert again["message"]["id"] == first["message"]["id"]
    contact = await asyncio.to_thread(webchat.contact_for_thread, first["message"]["threadId"])
    await asyncio.sleep(0.3)
    detail = webchat.emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
    assert len(detail["messages"]) == 1


async def test_foreign_origin_is_refused(webchat: Webchat) -> None:
    async with widget(webchat, origin="https://evil.example") as w:
        assert w.welcome == {
            "type": "error",
            "code": "forbidden-origin",
            "detail": "this page may not open this channel's chat",
        }
        with pytest.raises(ConnectionClosed) as closed:
            await w.ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


async def test_verified_identity_and_forgery(webchat: Webchat) -> None:
    async with widget(
        webchat, visitorId=None, userId="u-42", signature=webchat.signature_for("u-42")
    ) as w:
        assert w.welcome["type"] == "welcome"
        await w.say("verified hello")
    async with widget(webchat, visitorId=None, userId="u-42", signature="00" * 32) as w:
        assert w.welcome["type"] == "error"
        assert w.welcome["code"] == "unauthenticated"
    async with widget(webchat, visitorId="not-hex") as w:
        assert w.welcome["code"] == "unauthenticated"
    async with widget(webchat, visitorId=None, channel="chat_nope") as w:
        assert w.welcome["code"] == "channel-not-found"


async def test_a_second_customer_cannot_see_the_first(webchat: Webchat) -> None:
    async with widget(webchat) as alice:
        secret_message = (await alice.say("my address is 1 Main St"))["message"]
        async with widget(webchat) as bob:
            assert bob.welcome["messages"] == []
            assert bob.welcome["customerId"] != alice.welcome["customerId"]
            await bob.say("hello?")
            # Bob's own conversation is separate, and Alice's attachment ids are not his.
            await bob.send(
                {
                    "type": "message",
                    "clientId": "c-x",
                    "text": "x",
                    "attachments": [{"id": "att_nope"}],
                }
            )
            error = await bob.expect("error", clientId="c-x")
            assert error["code"] == "invalid"
            await bob.send({"type": "seen", "messageId": secret_message["id"]})
        # Alice saw nothing of Bob's.
        await alice.say("still here")
        frames = await alice.drain(0.5)
        assert all("hello?" not in json.dumps(f) for f in frames)


async def test_rate_limit_and_size_limit(tmp_path: Path, emulator: Emulator) -> None:
    async with (
        custom_webchat(
            tmp_path, emulator, rate_limit_messages=2, rate_limit_seconds=60, max_text_length=10
        ) as chat,
        widget(chat) as w,
    ):
        await w.send({"type": "message", "clientId": "c-long", "text": "x" * 11})
        assert (await w.expect("error", clientId="c-long"))["code"] == "too-long"
        await w.say("one")
        await w.say("two")
        await w.send({"type": "message", "clientId": "c-3", "text": "three"})
        assert (await w.expect("error", clientId="c-3"))["code"] == "rate-limited"
        await w.send({"type": "dance"})
        assert (await w.expect("error"))["code"] == "invalid"


async def test_ended_conversation_refuses_messages_until_a_new_one(webchat: Webchat) -> None:
    async with widget(webchat) as w:
        message = (await w.say("hello"))["message"]
        await asyncio.to_thread(webchat.contact_for_thread, message["threadId"])

        db = Database(webchat.stack.settings.database_url)
        await db.run_write(
            conversations.update_conversation,
            message["threadId"],
            state="ended",
            ended_at=1,
            ended_reason="agent",
        )
        await db.close()

        await w.send({"type": "message", "clientId": "c-late", "text": "are you there?"})
        assert (await w.expect("error", clientId="c-late"))["code"] == "conversation-ended"
        ended = await w.expect("ended")
        assert ended["threadId"] == message["threadId"]
        await w.send({"type": "new_conversation"})
        fresh = await w.expect("welcome")
        assert fresh["conversation"] is None
        again = (await w.say("new question"))["message"]
        assert again["threadId"] != message["threadId"]


async def test_typing_both_ways(webchat: Webchat) -> None:
    async with widget(webchat) as w:
        message = (await w.say("hello"))["message"]
        contact = await asyncio.to_thread(webchat.contact_for_thread, message["threadId"])
        # The emulator holds the contact before the middleware has recorded it (written with
        # the delivery's outcome, then "sent"): typing before that has no contact to go to.
        await w.expect("status", messageId=message["id"], status="sent")
        await w.send({"type": "typing", "typing": True})
        await asyncio.to_thread(
            wait_for,
            lambda: webchat.emulator.requests(path_contains="/sender-actions"),
            what="customer typing in CXone",
        )
        agent = webchat.emulator.admin.post(
            f"/emulator/contacts/{contact['id']}/typing", json={"typing": True}
        )
        assert agent.status_code == 200, agent.text
        assert (await w.expect("typing"))["typing"] is True


async def test_heartbeat_pings(tmp_path: Path, emulator: Emulator) -> None:
    async with (
        custom_webchat(tmp_path, emulator, heartbeat_seconds=0.2) as chat,
        widget(chat) as w,
    ):
        await w.expect("ping", timeout=3)
        await w.send({"type": "pong"})
        await w.expect("ping", timeout=3)


async def test_attachment_upload_reaches_cxone_and_is_fetchable(webchat: Webchat) -> None:
    visitor = secrets.token_hex(16)
    upload_url = f"{webchat.url}/webchat/v1/channels/{webchat.channel_id}/attachments"
    from_page = {"X-Byoc-Visitor": visitor, "Origin": webchat.page_origin}
    async with loopback.async_client() as http:
        uploaded = await http.post(
            upload_url,
            files={"file": ("dot.png", PNG, "image/png")},
            headers=from_page,
        )
        assert uploaded.status_code == 201, uploaded.text
        attachment = uploaded.json()
        assert attachment["mimeType"] == "image/png"
        fetched = await http.get(attachment["url"])
        assert fetched.content == PNG
        assert fetched.headers["content-type"] == "image/png"
        # A guessed token of the right form finds nothing (a malformed one is 401 at once).
        guessed = await http.get(attachment["url"].rsplit("/", 1)[0] + "/" + "A" * 32)
        assert guessed.status_code == 404

        wrong_type = await http.post(
            upload_url,
            files={"file": ("x.html", b"<script>", "text/html")},
            headers=from_page,
        )
        assert wrong_type.status_code == 415
        assert wrong_type.json()["type"] == "urn:byoc:problem:unsupported-media-type"
        too_big = await http.post(
            upload_url,
            files={"file": ("big.png", b"\0" * (5 * 1024 * 1024 + 1), "image/png")},
            headers=from_page,
        )
        assert too_big.status_code == 413
        anonymous = await http.post(upload_url, files={"file": ("dot.png", PNG, "image/png")})
        assert anonymous.status_code == 401

    async with widget(webchat, visitorId=visitor) as w:
        await w.send(
            {
                "type": "message",
                "clientId": "c-att",
                "text": "",
                "attachments": [{"id": attachment["id"]}],
            }
        )
        ack = await w.expect("ack", clientId="c-att")
        thread = ack["message"]["threadId"]
    contact = await asyncio.to_thread(webchat.contact_for_thread, thread)
    sent = contact["messages"][0]["attachments"][0]
    assert sent["url"] == attachment["url"]
    async with loopback.async_client() as http:
        assert (await http.get(sent["url"])).content == PNG


async def test_uploads_answer_cors_for_allowed_origins_only(webchat: Webchat) -> None:
    upload_url = f"{webchat.url}/webchat/v1/channels/{webchat.channel_id}/attachments"
    preflight_headers = {
        "Origin": webchat.page_origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-byoc-visitor",
    }
    async with loopback.async_client() as http:
        allowed = await http.options(upload_url, headers=preflight_headers)
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == webchat.page_origin
        assert "x-byoc-visitor" in allowed.headers["access-control-allow-headers"]
        refused = await http.options(
            upload_url, headers={**preflight_headers, "Origin": "https://evil.example"}
        )
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        uploaded = await http.post(
            upload_url,
            files={"file": ("dot.png", PNG, "image/png")},
            headers={"X-Byoc-Visitor": secrets.token_hex(16), "Origin": webchat.page_origin},
        )
        assert uploaded.status_code == 201
        assert uploaded.headers["access-control-allow-origin"] == webchat.page_origin
        wrong_type = await http.post(
            upload_url,
            files={"file": ("x.html", b"<p>", "text/html")},
            headers={"X-Byoc-Visitor": secrets.token_hex(16), "Origin": webchat.page_origin},
        )
        assert wrong_type.status_code == 415
        assert wrong_type.headers["access-control-allow-origin"] == webchat.page_origin


async def test_open_sockets_and_pending_timers_are_metrics(webchat: Webchat) -> None:
    def gauge(name: str) -> float:
        text = loopback.get(webchat.url + "/metrics").text
        line = next(row for row in text.splitlines() if row.startswith(name + " "))
        return float(line.split()[1])

    async with widget(webchat) as w:
        assert await asyncio.to_thread(gauge, "byoc_open_websockets") == 1
        message = (await w.say("hello"))["message"]
        await asyncio.to_thread(agent_reply, webchat, message["threadId"], "hi!")
        await w.expect("message", message__text="hi!")
        assert await asyncio.to_thread(gauge, "byoc_pending_timers") == 1  # the idle clock runs
    await asyncio.to_thread(
        wait_for, lambda: gauge("byoc_open_websockets") == 0, what="the socket to close"
    )


async def test_binary_frames_and_a_seq_out_of_range_are_refused_with_a_reason(
    webchat: Webchat,
) -> None:
    """A binary frame is refused as the hello (closed 4400, saying why) and inside a session
    (an error frame, and the socket goes on); so is a hello resuming after a number no
    conversation holds."""
    url = webchat.url.replace("http://", "ws://") + "/webchat/v1/ws"
    async with connect(url, origin=Origin(webchat.page_origin)) as ws:
        await ws.send(json.dumps({"type": "hello", "channel": webchat.channel_id}).encode())
        refusal = json.loads(await ws.recv())
        assert (refusal["type"], refusal["code"]) == ("error", "bad-hello")
        assert "text" in refusal["detail"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4400

    async with widget(webchat) as w:
        await w.ws.send(b'{"type":"typing","typing":true}')
        error = await w.expect("error")
        assert error["code"] == "invalid"
        said = await w.say("still here")
        assert said["message"]["text"] == "still here"

    async with widget(webchat, afterSeq=2**63) as w:
        assert (w.welcome["type"], w.welcome["code"]) == ("error", "bad-hello")


async def test_an_agent_message_shown_while_its_files_are_fetched_is_shown_again_as_kept(
    webchat: Webchat,
) -> None:
    """CXone's links are short-lived: a message that a customer message's sync or a new
    socket's welcome showed while its file was fetched (1.5 s here) is sent again once its
    delivery kept the file, with the link kept here, and the store holds that link."""

    async def slow_file(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(1.5)  # a slow signed-storage URL
        headers = [(b"content-type", b"image/png")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PNG})

    server = ThreadedServer(slow_file).start()
    visitor = secrets.token_hex(16)
    signed = server.url + "/signed/ticket.png?X-Sig=abc&Expires=60"
    kept = webchat.url + "/webchat/v1/attachments/"

    def links(frames: list[dict[str, Any]]) -> list[str]:
        return [
            a["url"]
            for f in frames
            if f["type"] == "message" and f["message"]["text"] == "your ticket"
            for a in f["message"]["attachments"]
        ]

    try:
        async with widget(webchat, visitorId=visitor) as w:
            thread = (await w.say("hello"))["message"]["threadId"]
            await asyncio.to_thread(webchat.contact_for_thread, thread)
            body = {
                "thread": {"idOnExternalPlatform": thread},
                "messageContent": {"type": "TEXT", "payload": {"text": "your ticket"}},
                "attachments": [{"url": signed, "friendlyName": "ticket.png"}],
            }
            answer = await asyncio.to_thread(
                lambda: loopback.post(
                    f"{webchat.url}/integration/box/2.0/channel/{webchat.channel_id}/outbound",
                    json=body,
                    headers={"Authorization": f"Bearer {box_token(webchat.stack)}"},
                )
            )
            assert answer.status_code == 200, answer.text
            await asyncio.sleep(0.3)
            await w.say("are you there?")  # a sync from the store, the file still on its way
            async with widget(webchat, visitorId=visitor) as other_tab:
                assert links([{"type": "message", "message": m}
                              for m in other_tab.welcome["messages"]]) == [signed]  # fmt: skip
                later = await other_tab.drain(4)
            frames = await w.drain(1)
        for seen in (later, frames):
            assert links(seen)[-1].startswith(kept), links(seen)
    finally:
        server.stop()
    async with widget(webchat, visitorId=visitor) as again:
        assert links([{"type": "message", "message": m} for m in again.welcome["messages"]])[
            0
        ].startswith(kept)
