"""The agent console is usable on a phone, by keyboard and with a screen reader (axe-core in
Debian's chromium), and says who wrote each message."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.support.box_receiver import CHANNEL_ID, inbound_message, wired

pytestmark = pytest.mark.browser

SIZES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 360, "height": 740},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}


def violations(page: Page) -> list[str]:
    found: list[dict[str, Any]] = Axe().run(page).response["violations"]
    return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in found]


@pytest.mark.parametrize("size", sorted(SIZES))
def test_console_fits_and_has_no_axe_violations(browser: Browser, size: str) -> None:
    with wired() as (emu, _box), emu.api_client() as api:
        messages = f"/channels/{CHANNEL_ID}/messages"
        named = api.post(
            messages,
            json=inbound_message(
                "m-named",
                "thread-named",
                "customer-named",
                "Where is my parcel?",
                authorEndUserIdentity={
                    "idOnExternalPlatform": "customer-named",
                    "firstName": "Bruno",
                    "lastName": "Ganz",
                },
            ),
        ).json()["consumerContact"]
        anonymous = api.post(
            messages,
            json=inbound_message(
                "m-anon",
                "thread-anon",
                "cus_4e6b0aa1c2d3",
                "Hello?",
                authorEndUserIdentity={"idOnExternalPlatform": "cus_4e6b0aa1c2d3"},
            ),
        ).json()["consumerContact"]
        emu.admin.post(f"/emulator/contacts/{named['id']}/reply", json={"text": "On its way!"})
        # What the middleware sends by itself (an idle warning) has no agent.
        api.post(
            f"/channels/{CHANNEL_ID}/outbound",
            json={
                "idOnExternalPlatform": "sys-1",
                "thread": {"idOnExternalPlatform": "thread-anon"},
                "messageContent": {"type": "TEXT", "payload": {"text": "Are you still there?"}},
                "recipients": [{"idOnExternalPlatform": "cus_4e6b0aa1c2d3"}],
            },
        )
        api.post(
            f"/channels/{CHANNEL_ID}/threads/thread-anon/sender-actions",
            json={"action": "isTypingOn"},
        )

        context = browser.new_context(**SIZES[size])  # type: ignore[arg-type]
        try:
            page = context.new_page()
            page.goto(f"{emu.url}/console")
            anon_card = page.get_by_test_id(f"contact-{anonymous['id']}")
            expect(anon_card).to_contain_text("Visitor …a1c2d3")
            expect(page.get_by_test_id(f"typing-indicator-{anonymous['id']}")).to_have_text(
                "Visitor …a1c2d3 is typing…"
            )
            expect(anon_card).to_contain_text("Automated")
            named_card = page.get_by_test_id(f"contact-{named['id']}")
            expect(named_card).to_contain_text("Bruno Ganz")
            expect(named_card).to_contain_text("Agent")
            assert "cus_4e6b0aa1c2d3" not in (anon_card.inner_text())

            width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"the console overflows at {size}: {width}"
            assert violations(page) == []

            # The transcript scrolls, so it must be reachable by keyboard.
            transcript_id = f"transcript-{named['id']}"
            for _ in range(40):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.dataset.testid") == transcript_id:
                    break
            else:
                pytest.fail("the transcript cannot be reached with Tab")
        finally:
            context.close()
