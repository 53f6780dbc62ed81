"""Fixtures: the emulator with a registered BYOC integration, and the `byoc` CLI against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Cli, cli_env, register_integration
from tests.support.emulator import Emulator


@pytest.fixture
def cli(tmp_path: Path, emulator: Emulator) -> Cli:
    register_integration(emulator)
    return Cli(tmp_path, emulator, cli_env(tmp_path, emulator))
