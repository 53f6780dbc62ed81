"""How the suite is spread over pytest-xdist workers (`bash scripts/test` runs it with `-n`).

Every test is a unit of work on its own, except the browser tests: they are one unit, so one
worker runs them all, one module after the other. Chromium runs several processes of its own;
two of them at once on a small machine slow each other down more than they gain, and a module's
`browser` fixture is started once.

Units go out longest first, by the durations of the last run (pytest's cache keeps them), so
that no long test starts last while the other workers have nothing left to do; a worker is
given its next unit when it starts the last one it has. A test the cache has no duration for
(a fresh clone, CI) takes the one recorded in `tests/durations.json` for the long tests, written
from a cache by `python -m tests.support.scheduling` (worth it after adding a long test).
Which tests are browser tests only a worker knows, having collected them: each worker writes
them to a file the scheduler reads once every worker has collected.

Outside xdist (`-n 0`, or a plain `pytest`) only the durations are recorded.
"""

from __future__ import annotations

import gc
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

BROWSER_GROUP = "browser"
DURATIONS_KEY = "byoc/durations"
RECORDED = Path(__file__).resolve().parents[1] / "durations.json"
# Tests shorter than this are left out of RECORDED: they weigh the median of the others.
RECORDED_FROM_SECONDS = 0.5
GROUPS_DIR = pytest.StashKey[Path]()
DURATIONS = pytest.StashKey[dict[str, float]]()


def group_of(item: pytest.Item) -> str | None:
    """The unit `item` shares with other tests, or None for a unit of its own."""
    return BROWSER_GROUP if "browser" in getattr(item, "fixturenames", ()) else None


class Scheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no type hints
    """xdist's scheduling by scope, with the units and their order described above."""

    def __init__(self, config: pytest.Config, log: Any) -> None:
        super().__init__(config, log)
        self.groups: dict[str, str] = {}

    def _split_scope(self, nodeid: str) -> str:
        return self.groups.get(nodeid, nodeid)

    def schedule(self) -> None:
        if self.collection is not None:  # type: ignore[has-type]  # a worker joined later
            super().schedule()
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.groups = collected_groups(self.config.stash[GROUPS_DIR])
        collection = list(next(iter(self.registered_collections.values())))
        self.collection = collection
        units: dict[str, dict[str, bool]] = {}
        for nodeid in collection:
            units.setdefault(self._split_scope(nodeid), {})[nodeid] = False
        last = previous_durations(self.config)
        # A test without a duration is taken for a short one (RECORDED lists only long ones).
        usual = min(statistics.median(last.values()), RECORDED_FROM_SECONDS) if last else 1.0

        def weight(scope: str) -> float:
            return float(sum(last.get(nodeid, usual) for nodeid in units[scope]))

        for scope in sorted(units, key=weight, reverse=True):
            self.workqueue[scope] = units[scope]
        while len(self.nodes) > len(self.workqueue):  # more workers than units
            unused, _ = self.assigned_work.popitem()
            unused.shutdown()
        for _ in range(2):  # a unit to run and the next one, round the workers
            for node in self.nodes:
                self._reschedule(node)

    def _reschedule(self, node: Any) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        if self._pending_of(self.assigned_work[node]) <= 1:
            self._assign_work_unit(node)


def previous_durations(config: pytest.Config) -> dict[str, float]:
    none: dict[str, float] = {}
    return config.stash.get(DURATIONS, none)


def recorded_durations() -> dict[str, float]:
    try:
        recorded: dict[str, float] = json.loads(RECORDED.read_text())
    except FileNotFoundError:
        return {}
    return recorded


def record(cached: dict[str, float]) -> int:
    """Write RECORDED from a cache's durations; how many tests it holds."""
    long = {
        nodeid: round(seconds, 1)
        for nodeid, seconds in sorted(cached.items())
        if seconds >= RECORDED_FROM_SECONDS
        and (RECORDED.parent.parent / nodeid.partition("::")[0]).is_file()  # still there
    }
    RECORDED.write_text(json.dumps(long, indent=0) + "\n")
    return len(long)


def collected_groups(directory: Path) -> dict[str, str]:
    for written in sorted(directory.glob("*.json")):  # every worker collected the same
        groups: dict[str, str] = json.loads(written.read_text())
        return groups
    return {}


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    cache = getattr(config, "cache", None)
    cached = cache.get(DURATIONS_KEY, {}) if cache is not None else {}
    config.stash[DURATIONS] = {**recorded_durations(), **cached}
    directory = Path(tempfile.mkdtemp(prefix="byoc-xdist-"))
    config.stash[GROUPS_DIR] = directory
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput["byoc_groups_dir"] = str(node.config.stash[GROUPS_DIR])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Scheduling | None:
    return Scheduling(config, log) if config.getvalue("dist") == "load" else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None or "byoc_groups_dir" not in workerinput:
        return
    groups = {item.nodeid: group for item in items if (group := group_of(item)) is not None}
    written = Path(workerinput["byoc_groups_dir"]) / f"{workerinput['workerid']}.json"
    partial = written.with_suffix(".part")
    partial.write_text(json.dumps(groups))
    partial.rename(written)  # read whole or not at all


def pytest_collection_finish() -> None:
    # What collection built (modules, fixtures, the app's imports) lives for the whole run:
    # kept out of the cyclic collector's generations, it is not scanned again at every pass.
    gc.freeze()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    durations = _session_durations.setdefault(report.nodeid, 0.0)
    _session_durations[report.nodeid] = durations + report.duration


_session_durations: dict[str, float] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    cache = getattr(config, "cache", None)
    if hasattr(config, "workerinput") or cache is None or not _session_durations:
        return
    cache.set(DURATIONS_KEY, {**previous_durations(config), **_session_durations})


if __name__ == "__main__":
    cache_file = RECORDED.parent.parent / ".pytest_cache" / "v" / DURATIONS_KEY
    count = record(json.loads(cache_file.read_text()))
    print(f"{RECORDED}: the durations of {count} tests, from {cache_file}")
