"""Reading what the JSON log formatter wrote, and leaving logging as the test found it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from byoc.ops.logging import QUIET_LOGGERS, UVICORN_LOGGERS


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back the levels, handlers and propagation that `byoc.ops.logging.configure` changes."""
    root = logging.getLogger()
    saved = [(root, root.level, root.propagate, list(root.handlers))]
    for name in (*UVICORN_LOGGERS, *QUIET_LOGGERS):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate, list(logger.handlers)))
    yield
    for logger, level, propagate, handlers in saved:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every JSON line written to `stream`."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
