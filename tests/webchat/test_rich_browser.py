"""Rich messages in the widget, in Debian's chromium: emulator agent → widget, choice → DE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.emulator import Emulator
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
    load_demo_page,
    screenshot_path,
    webchat_beside_playwright,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def webchat(tmp_path: Path, emulator: Emulator) -> Iterator[Webchat]:
    with webchat_beside_playwright(tmp_path, emulator) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(**DESKTOP)
    try:
        yield context.new_page()
    finally:
        context.close()


def _samples(webchat: Webchat) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, Any]] = webchat.emulator.admin.get("/emulator/rich-samples").json()
    return samples


def _agent_sends(webchat: Webchat, contact_id: str, content: dict[str, Any]) -> None:
    agent_reply(webchat, contact_id, "", messageContent=content)


def _postbacks(webchat: Webchat, contact_id: str) -> list[tuple[str, str | None]]:
    return [
        (m["messageContent"]["payload"]["text"], m["messageContent"].get("postback"))
        for m in contact(webchat, contact_id)["messages"]
        if m["direction"] == "inbound"
    ]


def _start(page: Page, webchat: Webchat) -> tuple[Widget, str]:
    widget = load_demo_page(page, webchat).open().wait_connected()
    widget.say("What's on tonight?")
    return widget, webchat.contact_for_thread(widget.thread_id())["id"]


def _shoot(widget: Widget, name: str, tmp_path: Path) -> None:
    widget.page.mouse.move(0, 0)
    widget.page.wait_for_function(
        "() => [...document.querySelector('[data-byoc-widget]').shadowRoot"
        ".querySelectorAll('img')].every((img) => img.complete)"
    )
    widget.part("byoc-panel").screenshot(
        path=str(screenshot_path(name, tmp_path)), animations="disabled"
    )


def test_each_rich_type_renders_and_choices_reach_cxone(
    webchat: Webchat, page: Page, tmp_path: Path
) -> None:
    widget, contact_id = _start(page, webchat)
    samples = _samples(webchat)

    # Quick replies: buttons under the prompt; the chosen one's label is sent with its
    # postback, and the buttons go.
    _agent_sends(webchat, contact_id, samples["QUICK_REPLIES"])
    buttons = widget.part("byoc-quick-reply")
    expect(buttons).to_have_count(3)
    expect(widget.part("byoc-quick-replies")).to_have_attribute("role", "group")
    expect(widget.message("Which drink would you like?")).to_be_visible()
    _shoot(widget, "rich-quick-replies.png", tmp_path)
    buttons.filter(has_text="Latte").click()
    expect(buttons).to_have_count(0)
    expect(widget.message("Latte")).to_have_attribute("data-sender", "customer")
    wait_for(
        lambda: ("Latte", "drink=latte") in _postbacks(webchat, contact_id),
        what="quick reply postback in DE",
        pause=in_page(page),
    )

    # List picker: items with image and description; a pick sends label and postback. The
    # keyboard reaches the items and Enter chooses one.
    _agent_sends(webchat, contact_id, samples["LIST_PICKER"])
    items = widget.part("byoc-list-item")
    expect(items).to_have_count(3)
    expect(items.first.locator("img")).to_have_attribute("alt", "")
    expect(items.nth(1)).to_contain_text("Four seats, outside")
    _shoot(widget, "rich-list-picker.png", tmp_path)
    items.filter(has_text="Garden").click()
    wait_for(
        lambda: ("Garden", "table=garden") in _postbacks(webchat, contact_id),
        what="list item postback in DE",
        pause=in_page(page),
    )
    items.filter(has_text="Bar").focus()
    page.keyboard.press("Enter")
    wait_for(
        lambda: ("Bar", "table=bar") in _postbacks(webchat, contact_id),
        what="list item chosen by keyboard",
        pause=in_page(page),
    )

    # Rich link: a card that opens in a new tab, without an opener.
    _agent_sends(webchat, contact_id, samples["RICH_LINK"])
    card_link = widget.part("byoc-rich-link")
    expect(card_link).to_have_attribute("href", "https://example.com/menu")
    expect(card_link).to_have_attribute("target", "_blank")
    expect(card_link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(card_link).to_contain_text("Tonight's menu")
    expect(card_link).to_contain_text("(opens in a new tab)")
    _shoot(widget, "rich-link.png", tmp_path)

    # Adaptive card: text, image and facts rendered; the element it cannot render is made up
    # for by the fallback text; Action.Submit sends its data as the postback.
    _agent_sends(webchat, contact_id, samples["ADAPTIVE_CARD"])
    card = widget.part("byoc-card")
    expect(card).to_contain_text("Your order #1042")
    expect(card.locator("dt").nth(1)).to_have_text("Ready at")
    expect(card.locator("img")).to_have_attribute("alt", "Latte")
    expect(widget.part("byoc-card-fallback")).to_have_text(samples["ADAPTIVE_CARD"]["fallbackText"])
    expect(widget.part("byoc-card-link")).to_have_attribute("rel", "noopener noreferrer nofollow")
    _shoot(widget, "rich-adaptive-card.png", tmp_path)
    widget.part("byoc-card-action").filter(has_text="Confirm").click()
    wait_for(
        lambda: ("Confirm", "order=1042:confirm") in _postbacks(webchat, contact_id),
        what="card action postback in DE",
        pause=in_page(page),
    )
    assert axe_violations(page) == []


def test_quick_replies_are_gone_once_the_customer_answers_and_after_a_reload(
    webchat: Webchat, page: Page
) -> None:
    widget, contact_id = _start(page, webchat)
    _agent_sends(webchat, contact_id, _samples(webchat)["QUICK_REPLIES"])
    expect(widget.part("byoc-quick-reply")).to_have_count(3)
    widget.say("Something else, please")
    expect(widget.part("byoc-quick-reply")).to_have_count(0)
    widget = load_demo_page(page, webchat).open().wait_connected()  # the page loaded anew
    expect(widget.messages).to_have_count(3)
    expect(widget.part("byoc-quick-reply")).to_have_count(0)


def test_choices_are_disabled_once_the_agent_has_ended_the_conversation(
    tmp_path: Path, emulator: Emulator, browser: Browser
) -> None:
    with webchat_beside_playwright(
        tmp_path, emulator, overrides={"end_poll_interval_seconds": 0.2}
    ) as webchat:
        context = browser.new_context(**DESKTOP)
        try:
            page = context.new_page()
            widget, contact_id = _start(page, webchat)
            samples = _samples(webchat)
            _agent_sends(webchat, contact_id, samples["QUICK_REPLIES"])
            _agent_sends(webchat, contact_id, samples["LIST_PICKER"])
            choices = widget.page.locator("button[data-choice]")
            expect(choices).to_have_count(6)
            for index in range(6):
                expect(choices.nth(index)).to_be_enabled()

            webchat.emulator.admin.post(f"/emulator/contacts/{contact_id}/close")
            expect(widget.part("byoc-ended")).to_be_visible(timeout=15_000)
            for index in range(6):
                expect(choices.nth(index)).to_be_disabled()
            assert axe_violations(page) == []

            # As the page loads anew, the ended conversation's choices come back disabled.
            widget = load_demo_page(page, webchat).open()
            expect(widget.part("byoc-ended")).to_be_visible()
            choices = widget.page.locator("button[data-choice]")
            expect(choices).to_have_count(6)
            for index in range(6):
                expect(choices.nth(index)).to_be_disabled()
            assert _postbacks(webchat, contact_id) == [("What's on tonight?", None)]
        finally:
            context.close()


def test_markup_in_rich_content_stays_text(webchat: Webchat, page: Page) -> None:
    widget, contact_id = _start(page, webchat)
    markup = '<img src=x onerror="window.pwned=1">'
    _agent_sends(
        webchat,
        contact_id,
        {
            "type": "LIST_PICKER",
            "payload": {
                "title": {"content": markup},
                "actions": [{"type": "REPLY_BUTTON", "text": markup, "postback": markup}],
            },
        },
    )
    item = widget.part("byoc-list-item")
    expect(item).to_have_text(markup)
    assert widget.part("byoc-list-picker").locator("img").count() == 0
    assert page.evaluate("() => window.pwned") is None


def test_rich_messages_fit_a_phone(webchat: Webchat, browser: Browser) -> None:
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        widget, contact_id = _start(page, webchat)
        for content in _samples(webchat).values():
            _agent_sends(webchat, contact_id, content)
        expect(widget.part("byoc-card")).to_be_visible()
        fits(page)
        assert axe_violations(page) == []
    finally:
        context.close()
