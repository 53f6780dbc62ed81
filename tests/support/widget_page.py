"""Driving the web chat widget in a page: helpers shared by the browser tests."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, expect

from tests.support.emulator import Emulator
from tests.support.waiting import wait_for
from tests.support.webchat import Webchat, running_webchat

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
DEMO_PAGE = ROOT / "src" / "byoc" / "static" / "demo" / "watering-hole.html"


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


@contextmanager
def webchat_beside_playwright(
    tmp_path: Path,
    emulator: Emulator,
    overrides: dict[str, Any] | None = None,
    **channel_settings: Any,
) -> Iterator[Webchat]:
    # The harness prepares its store with asyncio.run(), which refuses to run on the thread
    # where Playwright's sync API keeps its event loop: enter and leave it on a helper thread.
    with ThreadPoolExecutor(max_workers=1) as helper:
        running = running_webchat(tmp_path, emulator, overrides=overrides, **channel_settings)
        yield helper.submit(running.__enter__).result()
        helper.submit(running.__exit__, None, None, None).result()


def screenshot_path(name: str, tmp_path: Path) -> Path:
    # Committed screenshots are refreshed only on request, so a test run leaves the tree as is.
    if os.environ.get("BYOC_UPDATE_SCREENSHOTS") == "1":
        return ROOT / "docs" / name
    return tmp_path / name


def show_demo_page(page: Page, webchat: Webchat) -> Widget:
    """Load "The Watering Hole" demo page at the host page's origin (the allowed one).

    It is written into a page of that origin rather than routed: Chromium treats a routed
    document as public, and a public page may not load scripts from a loopback server."""
    return load_demo_page(page, webchat).open().wait_connected()


# Reduced motion: axe must see the panel as it rests, not half-way through its opening fade.
PHONE: dict[str, Any] = {
    "reduced_motion": "reduce",
    "viewport": {"width": 360, "height": 740},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}
DESKTOP: dict[str, Any] = {"reduced_motion": "reduce", "viewport": {"width": 1280, "height": 800}}


def axe_violations(page: Page) -> list[str]:
    found: list[dict[str, Any]] = Axe().run(page).response["violations"]
    return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in found]


def fits(page: Page) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"the page is {scroll} px wide in a {inner} px window"


def load_demo_page(page: Page, webchat: Webchat) -> Widget:
    """The demo page with its widget still closed (see `show_demo_page`)."""
    html = (
        DEMO_PAGE.read_text()
        .replace("{{MIDDLEWARE}}", webchat.url)
        .replace("{{CHANNEL}}", webchat.channel_id)
    )
    page.goto(webchat.page_origin + "/no-widget-here")
    page.set_content(html)
    widget = Widget(page)
    expect(widget.part("byoc-launcher")).to_be_attached()
    return widget
