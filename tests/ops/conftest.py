from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import Emulator
from tests.support.stack import Stack, running_stack


@pytest.fixture
def stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    with running_stack(tmp_path, emulator) as running:
        yield running
