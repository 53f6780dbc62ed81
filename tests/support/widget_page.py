"""Driving the web chat widget in a page: helpers shared by the browser tests."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from playwright.sync_api import Locator, Page, expect

from tests.support.waiting import wait_for
from tests.support.webchat import Webchat

T = TypeVar("T")


def in_page(page: Page) -> Callable[[float], None]:
    """A pause for `wait_for` that waits inside Playwright, so its event handlers keep running."""
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


def tiny_png() -> bytes:
    """A valid 2 by 2 PNG, made here so the test needs no fixture file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x0b\x7a\x75" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Widget:
    """The widget inside one page; locators pierce its open shadow root."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def part(self, test_id: str) -> Locator:
        return self.page.get_by_test_id(test_id)

    @property
    def input(self) -> Locator:
        return self.part("byoc-input")

    @property
    def messages(self) -> Locator:
        return self.part("byoc-message")

    def open(self) -> Widget:
        launcher = self.part("byoc-launcher")
        expect(launcher).to_be_attached()
        if launcher.get_attribute("aria-expanded") != "true":
            launcher.click()
        expect(self.part("byoc-panel")).to_be_visible()
        return self

    def wait_connected(self) -> Widget:
        self.page.wait_for_function(
            "() => window.ByocWidget && window.ByocWidget.state().connected", timeout=10_000
        )
        return self

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.page.evaluate("() => window.ByocWidget.state()")
        return state

    def say(self, text: str) -> None:
        self.input.fill(text)
        self.input.press("Enter")

    def thread_id(self) -> str:
        """The conversation's id, once the widget's messages are acknowledged."""
        self.wait_settled()
        return str(wait_for(lambda: self.state()["threadId"], what="a thread id"))

    def message(self, text: str) -> Locator:
        return self.messages.filter(has_text=text)

    def ids(self) -> list[str]:
        return [str(el.get_attribute("data-id")) for el in self.messages.all()]

    def wait_settled(self) -> None:
        """Every customer message is acknowledged (none is still `sending`)."""
        pending = self.page.locator("[data-testid=byoc-message][data-status=sending]")
        expect(pending).to_have_count(0)


def open_widget(page: Page, url: str) -> Widget:
    page.goto(url)
    return Widget(page).open().wait_connected()


def inbound_texts(contact: dict[str, Any]) -> list[str]:
    return [
        str((m.get("messageContent") or {}).get("payload", {}).get("text", ""))
        for m in contact["messages"]
        if m["direction"] == "inbound"
    ]


def contact(webchat: Webchat, contact_id: str) -> dict[str, Any]:
    found: dict[str, Any] = webchat.emulator.admin.get(f"/emulator/contacts/{contact_id}").json()
    return found


def agent_reply(webchat: Webchat, contact_id: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"text": text, "agent": {"firstName": "Sam"}, **extra}
    response = webchat.emulator.admin.post(f"/emulator/contacts/{contact_id}/reply", json=body)
    assert response.status_code == 200, response.text
    message: dict[str, Any] = response.json()["message"]
    return message
