"""Fixtures for the emulator's own tests: an emulator wired to a test Integration Box."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.box_receiver import BoxReceiver, wired
from tests.support.emulator import Emulator


@pytest.fixture(scope="session")
def _shared_pair() -> Iterator[tuple[Emulator, BoxReceiver]]:
    # Starting two uvicorn servers per test costs ~0.3 s; one pair, reset per test, keeps the
    # suite fast. Tests that need another configuration start their own with `wired(...)`.
    with wired() as pair:
        yield pair


@pytest.fixture
def box_and_emulator(
    _shared_pair: tuple[Emulator, BoxReceiver],
) -> tuple[Emulator, BoxReceiver]:
    emulator, receiver = _shared_pair
    emulator.admin.post("/emulator/reset").raise_for_status()
    receiver.reset()
    return emulator, receiver


@pytest.fixture
def emu(box_and_emulator: tuple[Emulator, BoxReceiver]) -> Emulator:
    return box_and_emulator[0]


@pytest.fixture
def box(box_and_emulator: tuple[Emulator, BoxReceiver]) -> BoxReceiver:
    return box_and_emulator[1]


@pytest.fixture
def api(emu: Emulator) -> Iterator[httpx.Client]:
    """The DE API with a valid bearer token, as the middleware would call it."""
    with emu.api_client(timeout=10) as client:
        yield client
