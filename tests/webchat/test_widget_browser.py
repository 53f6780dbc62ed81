"""The web chat widget end to end in Debian's chromium: widget ⇄ middleware ⇄ CXone emulator."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FilePayload,
    Page,
    WebSocketRoute,
    expect,
)

from byoc.channels.webchat.script import WidgetScript
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.servers import ThreadedServer
from tests.support.waiting import wait_for
from tests.support.webchat import Webchat
from tests.support.widget_page import (
    DESKTOP,
    PHONE,
    Widget,
    agent_reply,
    axe_violations,
    contact,
    fits,
    in_page,
    inbound_texts,
    load_demo_page,
    open_widget,
    screenshot_path,
    show_demo_page,
    tiny_png,
    webchat_beside_playwright,
)

pytestmark = pytest.mark.browser

NewPage = Callable[..., Page]


@pytest.fixture
def webchat(tmp_path: Path, emulator: Emulator) -> Iterator[Webchat]:
    with webchat_beside_playwright(tmp_path, emulator) as running:
        yield running


@pytest.fixture
def new_page(browser: Browser) -> Iterator[NewPage]:
    """Each call is a new customer: a fresh context has its own localStorage."""
    contexts: list[BrowserContext] = []

    def make(width: int = 1280, height: int = 800) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


class SocketTap:
    """Sits on the widget's WebSocket: records the widget's frames, can inject server frames,
    and can hold new sockets (they open but reach no server) to play an unreachable server."""

    def __init__(self, page: Page) -> None:
        self.hold = False
        self.silenced: list[WebSocketRoute] = []  # half-dead: the server's frames stop arriving
        self.page_closes = 0
        self.sent: list[dict[str, Any]] = []
        self.routes: list[WebSocketRoute] = []
        page.route_web_socket(re.compile(r".*/webchat/v1/ws$"), self._route)

    def _record(self, message: str | bytes) -> None:
        self.sent.append(json.loads(message))

    def _route(self, ws: WebSocketRoute) -> None:
        self.routes.append(ws)
        if self.hold:
            ws.on_message(self._record)
            return
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            self._record(message)
            server.send(message)

        def from_server(message: str | bytes) -> None:
            if ws not in self.silenced:
                ws.send(message)

        def server_closed(code: int | None, reason: str | None) -> None:
            if ws not in self.silenced:
                ws.close(code=code, reason=reason)

        def page_closed(code: int | None, reason: str | None) -> None:
            self.page_closes += 1
            server.close(code=code, reason=reason)

        ws.on_message(from_page)
        ws.on_close(page_closed)
        server.on_message(from_server)
        server.on_close(server_closed)

    def silence(self) -> None:
        self.silenced.append(self.routes[-1])

    def inject(self, frame: dict[str, Any]) -> None:
        self.routes[-1].send(json.dumps(frame))

    def frames(self, frame_type: str) -> list[dict[str, Any]]:
        return [f for f in self.sent if f.get("type") == frame_type]


def emulator_message(webchat: Webchat, contact_id: str, message_id: str) -> dict[str, Any]:
    for message in contact(webchat, contact_id)["messages"]:
        if message["id"] == message_id:
            found: dict[str, Any] = message
            return found
    raise AssertionError(f"no message {message_id} in contact {contact_id}")


def test_widget_script_is_small_and_self_contained() -> None:
    import gzip

    source = WidgetScript.load().body  # what /widget/v1/widget.js serves
    assert len(gzip.compress(source, 9)) < 30 * 1024
    text = source.decode()
    assert "innerHTML = ICONS[" in text
    assert text.count("innerHTML") == 1
    assert not re.search(
        r"(https?:)?//(?!www\.w3\.org)[a-z0-9.-]+\.[a-z]{2,}/", text.split("*/", 1)[1]
    )


def test_messages_typing_and_receipts_both_ways(webchat: Webchat, new_page: NewPage) -> None:
    page = new_page()
    widget = open_widget(page, webchat.page_url)
    expect(widget.part("byoc-greeting")).to_contain_text("Hi! How can we help?")
    expect(widget.input).to_be_focused()

    widget.say("Hello from the widget")
    contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
    wait_for(lambda: inbound_texts(contact(webchat, contact_id)) == ["Hello from the widget"])
    mine = widget.message("Hello from the widget")
    expect(mine).to_have_attribute("data-sender", "customer")
    # Sent: the middleware has recorded the CXone contact (the emulator holds it sooner), so
    # typing has somewhere to go.
    expect(mine).to_have_attribute("data-status", re.compile(r"^(sent|delivered|seen)$"))
    expect(mine).to_have_attribute("data-id", re.compile(r"^msg_"))

    # Typing, customer → agent: the emulator's contact shows it.
    widget.input.press_sequentially("I am typ")
    wait_for(lambda: contact(webchat, contact_id)["customerTyping"] is True, what="typing")
    # Typing, agent → customer.
    admin = webchat.emulator.admin
    admin.post(f"/emulator/contacts/{contact_id}/typing", json={"typing": True})
    expect(widget.part("byoc-typing")).to_be_visible()
    admin.post(f"/emulator/contacts/{contact_id}/typing", json={"typing": False})
    expect(widget.part("byoc-typing")).to_be_hidden()
    widget.input.press_sequentially("ing")
    widget.input.press("Enter")
    wait_for(lambda: contact(webchat, contact_id)["customerTyping"] is False, what="typing off")

    # An agent reply shows with the agent's name; being on screen, it is reported seen.
    reply = agent_reply(webchat, contact_id, "Hi, I'm Sam. How can I help?")
    shown = widget.message("How can I help?")
    expect(shown).to_have_attribute("data-sender", "agent")
    expect(shown).to_have_attribute("data-id", re.compile(r"^msg_"))
    expect(shown.get_by_test_id("byoc-author")).to_have_text("Sam")
    wait_for(
        lambda: emulator_message(webchat, contact_id, reply["id"])["status"] == "seen",
        what="seen reported to CXone",
    )

    # Minimised: unread badge and title; delivered but not seen until the panel opens.
    widget.part("byoc-close").click()
    expect(widget.part("byoc-launcher")).to_be_focused()
    second = agent_reply(webchat, contact_id, "Are you still there?")
    expect(widget.part("byoc-badge")).to_have_text("1")
    expect(page).to_have_title("(1) The Watering Hole")
    wait_for(
        lambda: emulator_message(webchat, contact_id, second["id"])["status"] == "delivered",
        what="delivered reported to CXone",
    )
    assert emulator_message(webchat, contact_id, second["id"])["status"] == "delivered"
    widget.open()
    expect(widget.part("byoc-badge")).to_be_hidden()
    expect(page).to_have_title("The Watering Hole")
    wait_for(lambda: emulator_message(webchat, contact_id, second["id"])["status"] == "seen")
    assert len(set(widget.ids())) == widget.messages.count() == 4


def test_attachments_both_ways(webchat: Webchat, new_page: NewPage) -> None:
    page = new_page()
    widget = open_widget(page, webchat.page_url)
    png = tiny_png()
    widget.part("byoc-file").set_input_files(
        files=[FilePayload(name="pixel.png", mimeType="image/png", buffer=png)]
    )
    contact_id = webchat.contact_for_thread(widget.thread_id())["id"]

    def uploaded() -> str | None:
        for message in contact(webchat, contact_id)["messages"]:
            for attachment in message.get("attachments") or []:
                return str(attachment["url"])
        return None

    url = wait_for(uploaded, what="the attachment in CXone")
    fetched = loopback.get(url, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == png
    mine = widget.messages.filter(has=page.locator("img")).first
    expect(mine).to_have_attribute("data-sender", "customer")

    agent_reply(
        webchat,
        contact_id,
        "Here you go",
        attachments=[
            {"url": url, "friendlyName": "photo.png"},
            {"url": "http://127.0.0.1:9/terms.pdf", "friendlyName": "terms.pdf"},
        ],  # a javascript: link is refused at the box (tests/byoc/test_box_edges.py)
    )
    shown = widget.message("Here you go")
    image = shown.locator("img[alt='photo.png']")
    expect(image).to_be_visible()
    wait_for(lambda: image.evaluate("i => i.complete && i.naturalWidth") == 2, what="image")
    expect(shown.get_by_role("link", name="terms.pdf")).to_have_attribute(
        "href", "http://127.0.0.1:9/terms.pdf"
    )


def test_reload_and_lost_socket_lose_nothing_and_duplicate_nothing(
    webchat: Webchat, new_page: NewPage
) -> None:
    page = new_page()
    tap = SocketTap(page)
    widget = open_widget(page, webchat.page_url)
    widget.say("First")
    widget.say("Second")
    contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
    agent_reply(webchat, contact_id, "Reply one")
    agent_reply(webchat, contact_id, "Reply two")
    expect(widget.messages).to_have_count(4)
    widget.wait_settled()
    before = widget.ids()

    # Reload with the server unreachable: the transcript comes from the widget's own cache.
    tap.hold = True
    page.reload()
    expect(widget.messages).to_have_count(4)
    assert widget.ids() == before
    assert widget.state()["connected"] is False
    # Meanwhile the agent writes and the customer types.
    agent_reply(webchat, contact_id, "Written while you were away")
    widget.open()
    widget.say("Typed while offline")
    expect(widget.message("Typed while offline")).to_have_attribute("data-status", "sending")

    # The server is reachable again: the widget reconnects and resumes from its last seq.
    tap.hold = False
    tap.routes[-1].close()
    widget.wait_connected()
    expect(widget.message("Written while you were away")).to_have_count(1)
    widget.wait_settled()
    hello = tap.frames("hello")[-1]
    assert hello["afterSeq"] >= 3
    assert hello["threadId"] == widget.thread_id()
    page.reload()
    widget.wait_connected()
    expect(widget.messages).to_have_count(6)
    ids = widget.ids()
    assert len(set(ids)) == 6
    assert ids[:4] == before
    wait_for(
        lambda: (
            inbound_texts(contact(webchat, contact_id))
            == ["First", "Second", "Typed while offline"]
        )
    )


def test_server_restart_while_the_page_is_open(webchat: Webchat, new_page: NewPage) -> None:
    page = new_page()
    widget = open_widget(page, webchat.page_url)
    widget.say("Before the restart")
    contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
    widget.wait_settled()

    webchat.stack.stop()
    expect(widget.part("byoc-status")).to_have_text("Reconnecting…")
    widget.say("Typed during the outage")
    expect(widget.message("Typed during the outage")).to_have_attribute("data-status", "sending")
    webchat.stack.start()
    agent_reply(webchat, contact_id, "Sent while your socket was down")
    expect(widget.message("Sent while your socket was down")).to_have_count(1)
    widget.wait_settled()

    webchat.restart()
    widget.wait_connected()
    widget.say("After the restart")
    wait_for(
        lambda: (
            inbound_texts(contact(webchat, contact_id))
            == ["Before the restart", "Typed during the outage", "After the restart"]
        ),
        timeout=15,
    )
    widget.wait_settled()
    ids = widget.ids()
    assert len(ids) == len(set(ids)) == 4


def test_html_from_either_side_renders_as_text(webchat: Webchat, new_page: NewPage) -> None:
    page = new_page()
    widget = open_widget(page, webchat.page_url)
    attack = '<img src=x onerror="window.__pwned=1"><b>bold</b>'
    widget.say(attack)
    contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
    wait_for(lambda: inbound_texts(contact(webchat, contact_id)) == [attack])
    agent_reply(
        webchat,
        contact_id,
        '<script>window.__pwned=2</script><img src=x onerror="window.__pwned=3"> '
        "see https://example.com/help?a=1 not javascript:alert(1)",
        agent={"firstName": "<i>Eve</i>"},
    )
    theirs = widget.messages.filter(has_text="window.__pwned=2")
    expect(theirs).to_have_count(1)
    expect(widget.message("onerror")).to_have_count(2)
    expect(widget.messages.locator(".bubble").first).to_have_text(attack)
    expect(theirs.get_by_test_id("byoc-author")).to_have_text("<i>Eve</i>")
    expect(widget.messages.locator("img, b, i, script")).to_have_count(0)
    links = theirs.get_by_role("link")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://example.com/help?a=1")
    assert page.evaluate("() => window.__pwned") is None


def test_a_second_customer_cannot_read_or_post_into_the_first(
    webchat: Webchat, new_page: NewPage
) -> None:
    first = open_widget(new_page(), webchat.page_url)
    first.say("My secret order is 1234")
    first_thread = first.thread_id()
    first_contact = webchat.contact_for_thread(first_thread)["id"]

    # The second customer even claims the first one's thread in its storage.
    page = new_page()
    key = f"byoc:{webchat.channel_id}:anon:state"
    claimed = json.dumps({"threadId": first_thread})
    page.add_init_script(f"localStorage.setItem({json.dumps(key)}, {json.dumps(claimed)})")
    second = open_widget(page, webchat.page_url)
    second.say("Hello, I am someone else")
    second_thread = second.thread_id()
    assert second_thread != first_thread
    second_contact = webchat.contact_for_thread(second_thread)["id"]
    assert second_contact != first_contact
    wait_for(
        lambda: inbound_texts(contact(webchat, second_contact)) == ["Hello, I am someone else"]
    )
    expect(second.messages).to_have_count(1)
    expect(page.get_by_text("secret order")).to_have_count(0)
    assert inbound_texts(contact(webchat, first_contact)) == ["My secret order is 1234"]
    expect(first.messages).to_have_count(1)

    # A verified identity with a forged signature is refused, visibly.
    forged = new_page()
    forged.goto(f"{webchat.page_url}?userId=u-42&signature={'0' * 64}")
    widget = Widget(forged).open()
    expect(widget.part("byoc-error")).to_contain_text("verify")
    expect(widget.input).to_be_disabled()
    # The same user with the right signature, one that expires in an hour, chats normally.
    signed = new_page()
    expires = int(time.time()) + 3600
    signature = webchat.signature_for("u-42", expires)
    verified = open_widget(
        signed,
        f"{webchat.page_url}?userId=u-42&signature={signature}&expires={expires}&name=Ada",
    )
    verified.say("Verified hello")
    verified_contact = webchat.contact_for_thread(verified.thread_id())["id"]
    wait_for(lambda: inbound_texts(contact(webchat, verified_contact)) == ["Verified hello"])


def test_too_long_and_rate_limited_messages_show_errors(
    tmp_path: Path, emulator: Emulator, new_page: NewPage
) -> None:
    window = 4  # seconds: the visitor may send 3 messages in any such window
    with webchat_beside_playwright(
        tmp_path, emulator, rate_limit_messages=3, rate_limit_seconds=window
    ) as webchat:
        widget = open_widget(new_page(), webchat.page_url)
        error = widget.part("byoc-error")
        widget.say("x" * 2001)
        expect(error).to_be_visible()
        expect(error).to_contain_text("too long")
        expect(error).to_have_attribute("role", "alert")
        expect(widget.input).to_have_value("x" * 2001)
        expect(widget.messages).to_have_count(0)

        for n in range(10):
            widget.say(f"quick {n}")
        expect(error).to_contain_text("too quickly")
        widget.wait_settled()
        failed = widget.page.locator("[data-testid=byoc-message][data-status=failed]")
        refused = failed.count()
        assert refused >= 1
        contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
        wait_for(lambda: len(inbound_texts(contact(webchat, contact_id))) == 10 - refused)
        time.sleep(window + 0.5)  # the window moves past the messages that went through
        failed.first.get_by_test_id("byoc-retry").click()
        expect(failed).to_have_count(refused - 1)
        wait_for(lambda: len(inbound_texts(contact(webchat, contact_id))) == 11 - refused)


def test_keyboard_only(webchat: Webchat, new_page: NewPage) -> None:
    page = new_page()
    page.goto(webchat.page_url)
    widget = Widget(page)
    launcher = widget.part("byoc-launcher")
    expect(launcher).to_be_visible()
    page.keyboard.press("Tab")
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")
    expect(widget.part("byoc-panel")).to_be_visible()
    expect(widget.input).to_be_focused()
    widget.wait_connected()
    page.keyboard.type("Line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("Line two")
    page.keyboard.press("Enter")
    expect(widget.message("Line one")).to_have_count(1)
    contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
    wait_for(lambda: inbound_texts(contact(webchat, contact_id)) == ["Line one\nLine two"])
    page.keyboard.press("Escape")
    expect(widget.part("byoc-panel")).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(widget.part("byoc-live")).to_have_attribute("aria-live", "polite")


def test_idle_countdown_end_and_new_conversation(webchat: Webchat, new_page: NewPage) -> None:
    page = new_page()
    tap = SocketTap(page)
    widget = open_widget(page, webchat.page_url)
    widget.say("Hi")
    thread_id = widget.thread_id()

    tap.inject({"type": "ping"})
    wait_for(lambda: tap.frames("pong"), what="pong", pause=in_page(page))
    deadline = int(time.time() * 1000) + 90_000
    tap.inject({"type": "idle_warning", "deadline": deadline, "text": "Still there?"})
    idle = widget.part("byoc-idle")
    expect(idle).to_be_visible()
    expect(idle).to_contain_text("Still there?")
    expect(widget.part("byoc-idle-countdown")).to_have_text(re.compile(r"^1:(29|30)$"))
    widget.part("byoc-still-here").click()
    wait_for(lambda: tap.frames("still_here"), what="still_here sent", pause=in_page(page))
    tap.inject({"type": "idle_cleared"})
    expect(idle).to_be_hidden()

    tap.inject({"type": "ended", "threadId": thread_id, "reason": "closed"})
    expect(widget.part("byoc-ended")).to_contain_text("This conversation has ended")
    expect(widget.input).to_be_disabled()
    widget.part("byoc-new-conversation").click()
    wait_for(
        lambda: tap.frames("new_conversation"), what="new_conversation sent", pause=in_page(page)
    )
    expect(widget.part("byoc-ended")).to_be_hidden()
    expect(widget.input).to_be_enabled()
    expect(widget.messages).to_have_count(0)


def test_phone_width_panel_is_full_width(webchat: Webchat, new_page: NewPage) -> None:
    page = new_page(360, 740)
    widget = open_widget(page, webchat.page_url)
    box = widget.part("byoc-panel").bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 360, 740)
    for part in ("byoc-input", "byoc-send", "byoc-attach", "byoc-close"):
        inside = widget.part(part).bounding_box()
        assert inside is not None
        assert inside["x"] >= 0, part
        assert inside["x"] + inside["width"] <= 360, part
    widget.say("Hello from my phone")
    expect(widget.message("Hello from my phone")).to_have_count(1)


def test_screenshots_desktop_and_phone(webchat: Webchat, new_page: NewPage, tmp_path: Path) -> None:
    page = new_page(1280, 800)
    widget = show_demo_page(page, webchat)
    widget.say("Hi! My profile picture upload keeps spinning forever.")
    contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
    agent_reply(webchat, contact_id, "Sorry about that! Which browser are you using?")
    expect(widget.messages).to_have_count(2)
    widget.say("Chrome, on my laptop.")
    widget.wait_settled()
    agent_reply(
        webchat, contact_id, "Thanks! We fixed a bug there this morning. Could you try once more?"
    )
    expect(widget.messages).to_have_count(4)
    widget.wait_settled()
    typing = f"/emulator/contacts/{contact_id}/typing"
    webchat.emulator.admin.post(typing, json={"typing": True})
    expect(widget.part("byoc-typing")).to_be_visible()
    widget.input.fill("It works now, thank you!")
    widget.input.blur()
    page.mouse.move(0, 0)
    page.screenshot(
        path=str(screenshot_path("widget-desktop.png", tmp_path)), animations="disabled"
    )

    page.set_viewport_size({"width": 360, "height": 740})
    widget = show_demo_page(page, webchat)
    expect(widget.messages).to_have_count(4)
    widget.input.fill("It works now, thank you!")
    widget.input.blur()
    page.screenshot(path=str(screenshot_path("widget-phone.png", tmp_path)), animations="disabled")
    webchat.emulator.admin.post(typing, json={"typing": False})


def test_prechat_form_that_arrives_after_the_panel_opened_takes_the_focus(
    webchat: Webchat, new_page: NewPage
) -> None:
    """The channel's settings come with the socket's first frame: when it reaches the widget
    after its panel opened, the pre-chat form it brings takes the focus from the composer it
    hides (it used to stay on the hidden composer: lost)."""
    page = new_page()
    tap = SocketTap(page)
    tap.hold = True  # the welcome frame arrives when the test sends it
    page.goto(webchat.page_url)
    widget = Widget(page).open()
    expect(widget.input).to_be_focused()
    wait_for(lambda: tap.routes, what="the widget's socket", pause=in_page(page))
    field = {"ident": "email", "label": "Email", "type": "email", "required": True}
    tap.inject({"type": "welcome", "config": {"prechat": [field]}, "conversation": None})
    expect(widget.part("byoc-prechat-form")).to_be_visible()
    expect(widget.part("byoc-prechat-email")).to_be_focused()


def test_prechat_form_fields_reach_cxone(
    tmp_path: Path, emulator: Emulator, new_page: NewPage
) -> None:
    prechat = [
        {"ident": "email", "label": "Email", "type": "email", "required": True},
        {"ident": "order", "label": "Order number", "type": "text", "required": False},
    ]
    with webchat_beside_playwright(tmp_path, emulator, prechat=prechat) as webchat:
        widget = open_widget(new_page(), webchat.page_url)
        form = widget.part("byoc-prechat-form")
        expect(form).to_be_visible()
        expect(widget.part("byoc-composer")).to_be_hidden()
        expect(widget.part("byoc-prechat-email")).to_be_focused()
        widget.part("byoc-prechat-submit").click()  # the required field is empty
        expect(form).to_be_visible()
        widget.part("byoc-prechat-email").fill("ada@example.com")
        widget.part("byoc-prechat-order").fill("WH-1234")
        widget.part("byoc-prechat-submit").click()
        expect(form).to_be_hidden()
        expect(widget.input).to_be_focused()
        widget.say("Where is my order?")
        found = webchat.contact_for_thread(widget.thread_id())
        assert inbound_texts(found) == ["Where is my order?"]
        # They reach CXone as the end user's custom fields on the first message.
        created = webchat.emulator.admin.get(
            "/emulator/requests", params={"pathContains": "/messages", "method": "POST"}
        ).json()["data"]
        identity = created[-1]["requestBody"]["authorEndUserIdentity"]
        fields = {f["ident"]: f["value"] for f in identity["customFields"]}
        assert fields == {"email": "ada@example.com", "order": "WH-1234"}


def test_a_silent_socket_is_detected_and_replaced(
    tmp_path: Path, emulator: Emulator, new_page: NewPage
) -> None:
    with webchat_beside_playwright(tmp_path, emulator, heartbeat_seconds=1) as webchat:
        page = new_page()
        tap = SocketTap(page)
        widget = open_widget(page, webchat.page_url)
        wait_for(lambda: tap.frames("pong"), what="a pong", pause=in_page(page))
        tap.silence()
        # No frame for two heartbeats: the widget gives up on the socket and dials again.
        wait_for(
            lambda: len(tap.frames("hello")) == 2,
            timeout=6,
            what="a new hello",
            pause=in_page(page),
        )
        assert tap.page_closes == 1
        widget.wait_connected()
        widget.say("Still connected?")
        contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
        wait_for(lambda: inbound_texts(contact(webchat, contact_id)) == ["Still connected?"])


def test_the_watering_hole_fits_a_phone(webchat: Webchat, browser: Browser) -> None:
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        widget = load_demo_page(page, webchat)
        expect(widget.part("byoc-launcher")).to_be_visible()
        fits(page)
        launcher = widget.part("byoc-launcher").bounding_box()
        assert launcher is not None
        assert launcher["x"] + launcher["width"] <= 360
        widget.part("byoc-launcher").tap()
        expect(widget.part("byoc-panel")).to_be_visible()
        widget.wait_connected()
        fits(page)
        for part in ("byoc-input", "byoc-send", "byoc-attach", "byoc-close"):
            inside = widget.part(part).bounding_box()
            assert inside is not None, part
            assert inside["x"] >= 0, part
            assert inside["x"] + inside["width"] <= 360, part
        widget.say("Hello from a phone")
        expect(widget.message("Hello from a phone")).to_have_count(1)
    finally:
        context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_widget_is_accessible_in_every_state(
    tmp_path: Path, emulator: Emulator, browser: Browser, size: str
) -> None:
    with webchat_beside_playwright(
        tmp_path, emulator, overrides={"end_poll_interval_seconds": 0.2}
    ) as webchat:
        context = browser.new_context(**(PHONE if size == "phone" else DESKTOP))
        try:
            page = context.new_page()
            widget = load_demo_page(page, webchat)
            assert axe_violations(page) == [], "closed"
            widget.open().wait_connected()
            assert axe_violations(page) == [], "open"
            widget.say("Is anyone there?")
            contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
            agent_reply(webchat, contact_id, "Yes, Sam here. How can I help?")
            expect(widget.messages).to_have_count(2)
            assert axe_violations(page) == [], "after a reply"

            # The agent ends the chat while the customer is in the message box.
            widget.input.focus()
            webchat.emulator.admin.post(f"/emulator/contacts/{contact_id}/close")
            expect(widget.part("byoc-ended")).to_be_visible(timeout=15_000)
            expect(widget.input).to_be_disabled()
            expect(widget.part("byoc-new-conversation")).to_be_focused()
            expect(widget.part("byoc-live")).to_have_text("This conversation has ended")
            fits(page)
            assert axe_violations(page) == [], "ended"
        finally:
            context.close()


def test_a_file_shown_before_it_was_kept_gets_its_lasting_link(
    webchat: Webchat, new_page: NewPage
) -> None:
    """The customer writes while the agent's file is still fetched (1.5 s): the widget may show
    the message with CXone's short-lived link at first, and shows the kept link in its place
    once the delivery sends it again."""
    png = tiny_png()

    async def slow_file(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(1.5)
        headers = [(b"content-type", b"image/png")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": png})

    server = ThreadedServer(slow_file).start()
    signed = server.url + "/signed/ticket.png?X-Sig=abc"
    try:
        page = new_page()
        widget = open_widget(page, webchat.page_url)
        widget.say("hello")
        contact_id = webchat.contact_for_thread(widget.thread_id())["id"]
        agent_reply(
            webchat,
            contact_id,
            "your ticket",
            attachments=[{"url": signed, "friendlyName": "ticket.png"}],
        )
        widget.say("are you there?")  # its sync reads the store while the file is fetched
        shown = widget.message("your ticket")
        kept = shown.locator(f"img[src^='{webchat.url}/webchat/v1/attachments/']")
        expect(kept).to_be_visible(timeout=10_000)
        expect(shown.locator(f"img[src='{signed}']")).to_have_count(0)
        assert len(set(widget.ids())) == widget.messages.count()  # shown once
    finally:
        server.stop()
