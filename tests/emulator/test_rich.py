"""The emulator's rich messages: the agent API and the console send each type; DE records
a customer's postback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.support.box_receiver import CHANNEL_ID, BoxReceiver, inbound_message, wired
from tests.support.waiting import wait_for

RICH_TYPES = ("QUICK_REPLIES", "LIST_PICKER", "RICH_LINK", "ADAPTIVE_CARD")


def _sent_types(calls: list[dict[str, Any]]) -> list[str]:
    return [
        str(call["body"]["messageContent"]["type"])
        for call in calls
        if call["authorization"] and call["path"].endswith("/outbound")
    ]


def _last_sent_is(box: BoxReceiver, kind: str) -> Callable[[], bool]:
    return lambda: _sent_types(box.box_calls())[-1:] == [kind]


def test_the_agent_api_sends_each_rich_type_as_it_is() -> None:
    with wired() as (emu, box), emu.api_client() as api:
        contact = api.post(f"/channels/{CHANNEL_ID}/messages", json=inbound_message()).json()
        samples = emu.admin.get("/emulator/rich-samples").json()
        assert sorted(samples) == sorted(RICH_TYPES)
        picker_icon = samples["LIST_PICKER"]["payload"]["actions"][0]["icon"]["url"]
        assert picker_icon.startswith(emu.url + "/static/")
        assert emu.admin.get(picker_icon.removeprefix(emu.url)).status_code == 200
        for kind in RICH_TYPES:
            reply = emu.admin.post(
                f"/emulator/contacts/{contact['consumerContact']['id']}/reply",
                json={"messageContent": samples[kind]},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["message"]["messageContent"] == samples[kind]
        sent = [
            call["body"]["messageContent"]
            for call in box.box_calls()
            if call["authorization"] and call["path"].endswith("/outbound")
        ]
        assert sent == [samples[kind] for kind in RICH_TYPES]


def test_a_reply_of_an_unknown_content_type_is_refused() -> None:
    with wired() as (emu, _box), emu.api_client() as api:
        contact = api.post(f"/channels/{CHANNEL_ID}/messages", json=inbound_message()).json()
        reply = emu.admin.post(
            f"/emulator/contacts/{contact['consumerContact']['id']}/reply",
            json={"messageContent": {"type": "HOLOGRAM", "payload": {}}},
        )
        assert reply.status_code == 400, reply.text


def test_de_records_a_postback_and_refuses_one_that_is_not_text() -> None:
    with wired() as (emu, _box), emu.api_client() as api:
        choice = inbound_message(text="Latte")
        choice["messageContent"]["postback"] = "drink=latte"
        contact = api.post(f"/channels/{CHANNEL_ID}/messages", json=choice).json()
        recorded = emu.admin.get(f"/emulator/contacts/{contact['consumerContact']['id']}").json()
        assert recorded["messages"][0]["messageContent"]["postback"] == "drink=latte"

        bad = inbound_message("msg-2", text="Tea")
        bad["messageContent"]["postback"] = {"drink": "tea"}
        refused = api.post(f"/channels/{CHANNEL_ID}/messages", json=bad)
        assert refused.status_code == 400
        assert "messageContent.postback" in refused.text


@pytest.mark.browser
def test_the_console_sends_each_rich_type_from_its_picker(browser: Browser) -> None:
    with wired() as (emu, box), emu.api_client() as api:
        choice = inbound_message(text="Latte")
        choice["messageContent"]["postback"] = "drink=latte"
        contact_id = api.post(f"/channels/{CHANNEL_ID}/messages", json=choice).json()[
            "consumerContact"
        ]["id"]
        page = browser.new_page(viewport={"width": 1200, "height": 720})
        try:
            page.goto(f"{emu.url}/console")
            transcript = page.get_by_test_id(f"transcript-{contact_id}")
            expect(transcript).to_contain_text("Latte (postback: drink=latte)")
            picker = page.get_by_test_id(f"rich-picker-{contact_id}")
            for kind in RICH_TYPES:
                picker.select_option(kind)
                page.get_by_test_id(f"rich-send-{contact_id}").click()
                wait_for(_last_sent_is(box, kind), what=f"{kind} sent")
            assert _sent_types(box.box_calls()) == list(RICH_TYPES)
            expect(transcript).to_contain_text("[Quick replies] Which drink would you like?")
            expect(transcript).to_contain_text("[Adaptive card] Your order #1042")
        finally:
            page.close()
