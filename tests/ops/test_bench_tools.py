"""The benchmark's load generator and webhook receiver still work (a short smoke run)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import loopback
from tests.support.servers import answering, free_port
from tests.support.waiting import wait_for

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def receiver() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(BENCH / "receiver.py"), str(port)])
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        wait_for(
            answering(lambda: loopback.post(url, content=b"{}", timeout=1)),
            what="the receiver to start",
        )
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / "loadgen.py")],
        input=json.dumps(spec).encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_closed_and_open_loop_against_the_receiver(receiver: int) -> None:
    common = {"host": "127.0.0.1", "port": receiver, "method": "POST", "path": "/webhook"}
    common |= {"body": '{"seq": __SEQ__}', "headers": {"Content-Type": "application/json"}}
    closed = loadgen({**common, "mode": "closed", "connections": 4, "duration": 0.5, "warmup": 0.1})
    assert closed["requests"] > 50
    assert closed["errors"] == 0
    assert closed["statuses"] == {"204": closed["requests"]}
    opened = loadgen({**common, "mode": "open", "rate": 200, "duration": 0.5, "warmup": 0.1})
    assert opened["requests"] == 100
    assert opened["unfinished"] == 0
    assert opened["latency_ms"]["p99"] < 1000
