"""One way into the store: SQL is built only in the store and the domain, and where SQLite and
PostgreSQL differ is decided in `byoc.store.dialect` alone.

A scan of the package's source (its syntax trees, not its text, so docstrings and comments may
name what the code may not use)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import byoc

PACKAGE = Path(byoc.__file__).parent
# The store, and the domain whose transaction functions run the store's queries and their own
# outbox rows.
MAY_BUILD_SQL = ("store", "conversations", "outbox")
# Driver and SQL-building modules: only what may build SQL imports them.
SQL_MODULES = ("sqlalchemy", "sqlite3", "aiosqlite", "byoc.store.schema", "byoc.store.compiled")
DIALECT_WORDS = ("sqlite", "postgresql", "postgres")
DIALECT_SQL = (
    "SKIP LOCKED",
    "BEGIN IMMEDIATE",
    "json_each",
    "jsonb_",
    "unnest(",
    "BIGSERIAL",
    "pg_notify",
    "pg_advisory",
    "VACUUM",
)


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        yield relative, ast.parse(path.read_text(), filename=str(path))


def imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def docstrings(tree: ast.Module) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def strings(tree: ast.Module) -> Iterator[str]:
    skip = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.value


def test_the_scan_sees_the_package() -> None:
    found = dict(modules())
    assert "store/dialect.py" in found
    assert "sqlalchemy" in {m.split(".")[0] for m in imported(found["store/db.py"])}


def test_only_the_store_and_the_domain_build_sql() -> None:
    offenders = [
        f"{name}: {module}"
        for name, tree in modules()
        if not name.startswith(tuple(f"{part}/" for part in MAY_BUILD_SQL))
        for module in imported(tree)
        if any(module == banned or module.startswith(banned + ".") for banned in SQL_MODULES)
    ]
    assert offenders == []


def test_only_the_dialect_module_tells_sqlite_from_postgresql() -> None:
    offenders = []
    for name, tree in modules():
        # Alembic revisions are history, frozen as written: they name the database they
        # special-case themselves rather than import today's dialect module.
        if name == "store/dialect.py" or name.startswith("store/alembic/versions/"):
            continue
        for value in strings(tree):
            if value.lower() in DIALECT_WORDS or any(word in value for word in DIALECT_SQL):
                offenders.append(f"{name}: {value!r}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "with_for_update":
                offenders.append(f"{name}: .with_for_update")
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "name"
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "dialect"
            ):
                offenders.append(f"{name}: .dialect.name")
    assert offenders == []
