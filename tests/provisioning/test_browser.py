"""The emulator console's "Add channel" button opens the Action URL page in chromium, as
CXone's admin UI does; the admin names the channel and lands back on the console."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.action_pages import start_pages
from tests.support.cli import INTEGRATION_ID
from tests.support.emulator import Emulator

pytestmark = pytest.mark.browser


def test_add_channel_from_the_console(browser: Browser, tmp_path: Path, emulator: Emulator) -> None:
    with start_pages(tmp_path, emulator, cxone_channel_integration_id=INTEGRATION_ID) as pages:
        context = browser.new_context()
        try:
            console = context.new_page()
            console.goto(f"{emulator.url}/console")
            with context.expect_page() as opened:
                console.get_by_test_id(f"add-channel-{INTEGRATION_ID}").click()
            action = opened.value
            action.wait_for_load_state()
            expect(action.get_by_role("heading")).to_have_text("Add a channel")
            action.get_by_test_id("name").fill("Browser shop")
            action.get_by_test_id("webhook-url").fill("https://platform.example.invalid/hook")
            action.get_by_test_id("create").click()
            action.wait_for_url(f"{emulator.url}/console")
            expect(action.get_by_test_id(f"add-channel-{INTEGRATION_ID}")).to_be_visible()
        finally:
            context.close()
        created = [c for c in pages.emulator_channels().values() if c["name"] == "Browser shop"]
        assert len(created) == 1
        assert created[0]["ownerUserId"] == emulator.config.agent_user_id
        local = pages.local_channel(created[0]["id"])
        assert local is not None
        assert local.webhook_url == "https://platform.example.invalid/hook"
