"""Fixtures for the whole suite; what they are built from lives in `tests.support`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.emulator import Emulator, running_emulator
from tests.support.postgres import postgres_url
from tests.support.stores import db, db_url
from tests.support.webchat import Webchat, running_webchat

# Fixtures: a fresh PostgreSQL database per test module; a store on SQLite and on PostgreSQL.
__all__ = ["db", "db_url", "postgres_url"]

# How the tests are spread over pytest-xdist workers.
pytest_plugins = ["tests.support.scheduling"]

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


@pytest.fixture
def webchat(tmp_path: Path, emulator: Emulator) -> Iterator[Webchat]:
    with running_webchat(tmp_path, emulator) as running:
        yield running
