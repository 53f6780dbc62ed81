"""Files that do one thing: no file under src/ grows past 400 lines (`wc -l` counts), and
what tests share lives in tests/support/, never in another test module."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent
MAX_LINES = 400

# Still over the limit, each waiting for its own split; remove an entry once its file is under.
TOO_LONG_FOR_NOW: set[str] = set()


def _sources() -> list[Path]:
    return [
        path
        for path in sorted(SRC.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]


def test_no_source_file_is_over_400_lines() -> None:
    too_long = {
        relative: lines
        for path in _sources()
        if (relative := path.relative_to(SRC).as_posix()) not in TOO_LONG_FOR_NOW
        and (lines := path.read_bytes().count(b"\n")) > MAX_LINES
    }
    assert too_long == {}, f"split these (lines over {MAX_LINES}): {too_long}"


def test_the_exceptions_still_exist() -> None:
    # An entry for a file that moved or went would silently exempt whatever takes its path.
    missing = {name for name in TOO_LONG_FOR_NOW if not (SRC / name).is_file()}
    assert missing == set()


def _imported_modules(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def test_no_test_module_imports_another() -> None:
    borrowing = {
        path.relative_to(TESTS).as_posix(): module
        for path in sorted(TESTS.rglob("*.py"))
        for module in _imported_modules(ast.parse(path.read_text()))
        if module.startswith("tests.")
        and any(part.startswith("test_") for part in module.split("."))
    }
    assert borrowing == {}, f"move what these share to tests/support/: {borrowing}"


def _runs_uvicorn(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "Server"
            and isinstance(node.value, ast.Name)
            and node.value.id == "uvicorn"
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "uvicorn"
            and any(alias.name == "Server" for alias in node.names)
        ):
            return True
    return False


def test_servers_are_started_by_the_harnesses_in_support() -> None:
    # One set of server harnesses (tests/support/servers.py): a test module that runs its own
    # uvicorn.Server is one more way to get the start-up, the port and the shutdown wrong.
    own = [
        path.relative_to(TESTS).as_posix()
        for path in sorted(TESTS.rglob("test_*.py"))
        if "support" not in path.relative_to(TESTS).parts
        and _runs_uvicorn(ast.parse(path.read_text()))
    ]
    assert own == [], f"use or extend tests/support/servers.py: {own}"
