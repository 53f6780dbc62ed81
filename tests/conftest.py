"""Shared fixtures. Emulator fixtures live in tests/emulator_harness.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulator_harness import Emulator, running_emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator() as running:
        yield running
