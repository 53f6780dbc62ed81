from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.byoc.harness import Stack, running_stack
from tests.emulator_harness import Emulator


@pytest.fixture
def stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    with running_stack(tmp_path, emulator) as running:
        yield running
