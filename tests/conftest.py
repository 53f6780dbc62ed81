"""Shared fixtures. Emulator fixtures live in tests/emulator_harness.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.emulator_harness import Emulator, running_emulator

# Debian's chromium (Playwright cannot download browsers here), headless, quiet on the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: Playwright's sync API keeps an event loop on this thread
    while it runs, so it must not outlive the module that asked for it."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator() as running:
        yield running
