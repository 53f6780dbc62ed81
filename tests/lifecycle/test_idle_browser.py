"""The whole idle story in a real browser, against the real server with short timeouts.

Real time here, not a `ManualClock`: the widget counts the countdown down on the browser's
clock, and its socket watchdog would take a jump of the browser's clock for a dead socket."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.emulator import Emulator
from tests.support.waiting import wait_for
from tests.support.webchat import running_webchat
from tests.support.widget_page import agent_reply, open_widget

pytestmark = pytest.mark.browser

SHORT = {
    "idle_timeout_seconds": 1.5,
    "idle_countdown_seconds": 4.0,
    "timer_poll_interval_seconds": 0.1,
    "end_poll_interval_seconds": 30.0,
}


def test_idle_warning_still_here_countdown_end_and_new_conversation(
    browser: Browser, tmp_path: Path, emulator: Emulator
) -> None:
    with running_webchat(tmp_path, emulator, overrides=SHORT) as chat:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            page = context.new_page()
            widget = open_widget(page, chat.page_url)
            widget.say("Hello, I need help with my account")
            thread = widget.thread_id()
            contact_id = chat.contact_for_thread(thread)["id"]

            # The agent answers; the customer goes quiet.
            agent_reply(chat, contact_id, "Sure! What is your username?")
            expect(widget.message("What is your username?")).to_be_visible()
            idle = widget.part("byoc-idle")
            expect(idle).to_be_visible(timeout=10_000)
            expect(widget.message("Are you still there?")).to_be_visible()
            expect(widget.part("byoc-idle-countdown")).to_have_text(re.compile(r"^0:0[0-4]$"))

            # "I'm still here" cancels the countdown on the server.
            widget.part("byoc-still-here").click()
            expect(idle).to_be_hidden(timeout=5_000)
            cancelled = chat.stack.conversation(thread)
            assert (cancelled.state, cancelled.countdown_deadline) == ("open", None)
            expect(widget.part("byoc-ended")).to_be_hidden()

            # The agent asks again; this time the customer does not answer.
            agent_reply(chat, contact_id, "Could you confirm your email?")
            expect(idle).to_be_visible(timeout=10_000)
            expect(widget.part("byoc-ended")).to_be_visible(timeout=15_000)
            expect(idle).to_be_hidden()
            expect(widget.input).to_be_disabled()
            expect(widget.message("closed because we did not hear from you")).to_be_visible()

            closes = wait_for(
                lambda: [
                    r
                    for r in emulator.requests(path_contains=f"/contacts/{contact_id}/status")
                    if r["method"] == "PUT"
                ],
                what="the contact closed in CXone",
            )
            assert closes[0]["requestBody"] == {"status": "closed"}
            agent_view = emulator.admin.get(f"/emulator/contacts/{contact_id}").json()
            assert agent_view["status"] == "closed"
            agent_texts = [m["messageContent"]["payload"]["text"] for m in agent_view["messages"]]
            assert any("Are you still there?" in t for t in agent_texts)
            assert any("did not hear from you" in t for t in agent_texts)

            # A new conversation starts on a new thread, and survives a reload.
            widget.part("byoc-new-conversation").click()
            expect(widget.input).to_be_enabled()
            page.reload()
            widget = open_widget(page, chat.page_url)
            expect(widget.part("byoc-ended")).to_be_hidden()
            widget.say("Me again, with another question")
            new_thread = widget.thread_id()
            assert new_thread != thread
            assert chat.contact_for_thread(new_thread)["id"] != contact_id
        finally:
            context.close()
