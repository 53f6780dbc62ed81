"""The agent console in a real browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Browser, expect

from tests.support.box_receiver import CHANNEL_ID, INTEGRATION_ID, inbound_message, wired
from tests.support.waiting import wait_for

# The committed screenshot is refreshed only on request (BYOC_UPDATE_SCREENSHOTS=1), so that a
# test run leaves the work tree as it found it; otherwise it goes to a temporary file.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "emulator-console.png"

pytestmark = pytest.mark.browser


def test_agent_replies_from_the_console(browser: Browser, tmp_path: Path) -> None:
    with wired() as (emu, box), emu.api_client() as api:
        messages = f"/channels/{CHANNEL_ID}/messages"
        older = api.post(
            messages,
            json=inbound_message(
                "m0",
                "thread-0",
                "customer-0",
                "Is my order on its way?",
                authorEndUserIdentity={"idOnExternalPlatform": "customer-0", "firstName": "Bruno"},
            ),
        ).json()["consumerContact"]
        emu.admin.post(f"/emulator/contacts/{older['id']}/accept")
        contact = api.post(
            messages, json=inbound_message(text="Hello, <b>can</b> you help me?")
        ).json()["consumerContact"]
        api.post(
            f"/channels/{CHANNEL_ID}/threads/thread-0/sender-actions",
            json={"action": "isTypingOn"},
        )

        page = browser.new_page(viewport={"width": 1200, "height": 720})
        try:
            page.goto(f"{emu.url}/console")
            card = page.get_by_test_id(f"contact-{contact['id']}")
            expect(card).to_be_visible()
            transcript = page.get_by_test_id(f"transcript-{contact['id']}")
            # Message text is text, never markup.
            expect(transcript).to_contain_text("Hello, <b>can</b> you help me?")
            expect(page.get_by_test_id(f"contact-status-{contact['id']}")).to_have_text("new")
            expect(page.get_by_test_id(f"typing-indicator-{older['id']}")).to_contain_text("typing")

            page.get_by_test_id(f"reply-input-{contact['id']}").fill("Of course, Ann!")
            page.get_by_test_id(f"reply-send-{contact['id']}").click()

            def replied() -> bool:
                return any(
                    call["body"].get("messageContent", {}).get("payload", {}).get("text")
                    == "Of course, Ann!"
                    for call in box.box_calls()
                    if call["authorization"] and call["path"].endswith("/outbound")
                )

            wait_for(replied, timeout=5, what="the reply")
            expect(transcript).to_contain_text("Of course, Ann!")
            expect(page.get_by_test_id(f"contact-status-{contact['id']}")).to_have_text("open")
            # Typing into the box told the middleware the agent was typing.
            assert any(c["path"].endswith("/sender-action") for c in box.box_calls())

            shot = (
                DOCS_SCREENSHOT
                if os.environ.get("BYOC_UPDATE_SCREENSHOTS") == "1"
                else tmp_path / "emulator-console.png"
            )
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000  # a rendered page, not a blank one

            page.get_by_test_id(f"close-{contact['id']}").click()
            expect(page.get_by_test_id(f"contact-status-{contact['id']}")).to_have_text("closed")
            expect(page.get_by_test_id(f"reply-send-{contact['id']}")).to_be_disabled()
        finally:
            page.close()


def test_add_channel_opens_the_action_url_with_a_one_time_token(browser: Browser) -> None:
    with wired() as (emu, box):
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{emu.url}/console")
            with context.expect_page() as opened:
                page.get_by_test_id(f"add-channel-{INTEGRATION_ID}").click()
            url = urlparse(opened.value.url)
            assert f"{url.scheme}://{url.netloc}{url.path}" == f"{box.url}/action"
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            assert query["brandId"] == "1001"
            assert query["backUrl"] == f"{emu.url}/console"
            assert query["apiHost"] == emu.url
            verified = emu.admin.post(
                f"{emu.api_url}/one-time-token/verification",
                json={
                    "brandId": 1001,
                    "userId": int(query["userId"]),
                    "token": query["token"],
                    "purpose": "channel-integration",
                },
            )
            assert verified.status_code == 200
        finally:
            context.close()


def test_agent_starts_an_outbound_from_the_console(browser: Browser) -> None:
    with wired() as (emu, box):
        page = browser.new_page()
        try:
            page.goto(f"{emu.url}/console")
            page.get_by_test_id(f"outbound-customer-{CHANNEL_ID}").fill("customer-42")
            page.get_by_test_id(f"outbound-text-{CHANNEL_ID}").fill("Your parcel left")
            page.get_by_test_id(f"outbound-send-{CHANNEL_ID}").click()
            expect(page.get_by_test_id(f"contacts-{CHANNEL_ID}")).to_contain_text(
                "Your parcel left"
            )
            assert any(c["path"].endswith("/recipients/validation") for c in box.box_calls())
        finally:
            page.close()
