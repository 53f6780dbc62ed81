"""Records `byoc serve`'s garbage collections, for bench/README.md's collector figures.

    PYTHONPATH=bench/gc_trace BYOC_BENCH_GC_TRACE=/tmp/gc \
        .venv/bin/python bench/customer_message.py ...

Python imports `sitecustomize` at start-up from `PYTHONPATH`; the benchmarks' child processes
inherit it. In a `byoc serve` process (nothing else) this records, per generation, how many
collections ran, their total and longest duration and how many objects they freed, and writes
that line to `$BYOC_BENCH_GC_TRACE/gc-<pid>.txt` every second (the server is stopped with a
signal: no exit hook runs). `BYOC_BENCH_GC_THRESHOLDS=a,b,c` sets the thresholds at start-up;
a server that sets its own after its start-up freeze (`byoc.cli._common.SERVER_GC_THRESHOLDS`)
overrides them, so the comparison in bench/README.md ran on the code before that commit.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _trace(out: Path) -> None:
    if os.environ.get("BYOC_BENCH_GC_THRESHOLDS"):
        gc.set_threshold(*map(int, os.environ["BYOC_BENCH_GC_THRESHOLDS"].split(",")))
    started: list[float] = [0.0]
    totals = {generation: [0, 0.0, 0.0, 0] for generation in range(3)}

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        total = totals[info["generation"]]
        total[0] += 1
        total[1] += took
        total[2] = max(total[2], took)
        total[3] += info["collected"]

    def write() -> None:
        path = out / f"gc-{os.getpid()}.txt"
        while True:
            time.sleep(1)
            parts = [
                f"gen{g} n={n} total={t * 1000:.0f}ms max={m * 1000:.1f}ms collected={c}"
                for g, (n, t, m, c) in totals.items()
            ]
            path.write_text(f"{gc.get_threshold()} " + " | ".join(parts) + "\n")

    gc.callbacks.append(on_collection)
    threading.Thread(target=write, daemon=True).start()


if (
    sys.argv
    and sys.argv[0].endswith("/byoc")
    and "serve" in sys.argv
    and (trace_dir := os.environ.get("BYOC_BENCH_GC_TRACE"))
):
    _trace(Path(trace_dir))
