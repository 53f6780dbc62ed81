"""How the suite is spread over pytest-xdist workers (`bash scripts/test` runs it with
`--dist loadgroup`): every test on its own, except

- the browser tests, all on one worker: Chromium runs several processes of its own, and two of
  them at once on a small machine slow each other down more than they gain;
- the tests of a module that share a module-scoped fixture (a PostgreSQL database, a server):
  on one worker, so that the fixture is set up once.

xdist's `loadgroup` sends the tests of one `xdist_group` to one worker, the largest groups
first. Outside xdist (`-n 0`, or a plain `pytest`) nothing here changes anything.
"""

from __future__ import annotations

import gc
import os

import pytest

BROWSER_GROUP = "browser"


def group_of(item: pytest.Item) -> str | None:
    """The xdist group `item` runs in, or None to run it wherever a worker is free."""
    names: list[str] = getattr(item, "fixturenames", [])
    if "browser" in names:
        return BROWSER_GROUP
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for name in names:
        definitions = info.name2fixturedefs.get(name, ())
        if definitions and definitions[-1].scope == "module":
            return item.nodeid.split("::", 1)[0]
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist names the items by their group
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    for item in items:
        group = group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish() -> None:
    # What collection built (modules, fixtures, the app's imports) lives for the whole run:
    # kept out of the cyclic collector's generations, it is not scanned again at every pass.
    gc.freeze()
