from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator_harness import Emulator
from tests.webchat.harness import Webchat, running_webchat


@pytest.fixture
def webchat(tmp_path: Path, emulator: Emulator) -> Iterator[Webchat]:
    with running_webchat(tmp_path, emulator) as running:
        yield running
