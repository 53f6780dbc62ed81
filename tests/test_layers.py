"""Imports point down only: no module of byoc imports a module of a higher layer.

The layer table is `byoc._layers.LAYERS`. Every import counts, wherever it is written (inside a
function, under `TYPE_CHECKING`), relative ones included; `from byoc.x import y` counts as an
import of `byoc.x.y` when that is a module, of `byoc.x` otherwise.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from byoc._layers import LAYERS

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "byoc"

# Imports that break the layering today, as (importer, imported). Each is a debt to pay off,
# not a licence: the list only ever shrinks, and an entry that no longer occurs fails the test.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """The rank of the most specific table entry naming `module` or a package above it."""
    best: tuple[int, int] | None = None  # (entry length, rank)
    for rank, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            # The bare package names its `__init__` only, or every module would match it.
            covers = module == entry or (entry != "byoc" and module.startswith(entry + "."))
            if covers and (best is None or len(entry) > best[0]):
                best = (len(entry), rank)
    return None if best is None else best[1]


def imported_modules(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import of byoc or cxone_emulator in `path`."""
    is_package = path.name == "__init__.py"
    seen: set[tuple[str, int]] = set()
    for found in _imports(module, path, is_package):
        if found not in seen:
            seen.add(found)
            yield found


def _imports(module: str, path: Path, is_package: bool) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield (submodule if submodule in MODULES else target), node.lineno


def violations() -> Iterator[tuple[str, str, str]]:
    """(importer, imported, why) for every import that breaks the layering."""
    for module, path in MODULES.items():
        own = layer_of(module)
        for imported, line in imported_modules(module, path):
            where = f"{path.relative_to(SOURCE)}:{line}"
            if imported.split(".")[0] == "cxone_emulator":
                yield module, imported, f"{where}: the middleware never imports the emulator"
                continue
            if imported.split(".")[0] != "byoc":
                continue
            theirs = layer_of(imported)
            if own is not None and theirs is not None and theirs > own:
                yield (
                    module,
                    imported,
                    f"{where}: {module} ({LAYERS[own][0]}) imports {imported} "
                    f"({LAYERS[theirs][0]}, a higher layer)",
                )


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if layer_of(m) is None]
    assert not unplaced, f"add these modules to byoc._layers.LAYERS: {unplaced}"


def test_no_module_imports_a_higher_layer() -> None:
    found = list(violations())
    new = [why for importer, imported, why in found if (importer, imported) not in KNOWN_VIOLATIONS]
    assert not new, "imports that point up:\n" + "\n".join(new)
    paid = KNOWN_VIOLATIONS - {(importer, imported) for importer, imported, _ in found}
    assert not paid, f"no longer violations, remove them from KNOWN_VIOLATIONS: {sorted(paid)}"


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("byoc", "foundation"),
        ("byoc.ops.metrics", "foundation"),
        ("byoc.store.db", "store"),
        ("byoc.channels.webhook", "channels"),
        ("byoc.channels.keys", "channels"),
        ("byoc.channels.webchat.route", "routes"),
        ("byoc.channels.webchat.session", "channels"),
        ("byoc.provisioning.action_pages", "routes"),
        ("byoc.cli", "entry points"),
    ],
)
def test_the_most_specific_entry_places_a_module(module: str, layer: str) -> None:
    rank = layer_of(module)
    assert rank is not None
    assert LAYERS[rank][0] == layer


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    # The checker itself, on a module that imports the app from the store layer.
    path = tmp_path / "db.py"
    path.write_text("from byoc.store import schema\nfrom .. import app\nimport byoc.cli as cli\n")
    found = list(imported_modules("byoc.store.db", path))
    assert found == [("byoc.store.schema", 1), ("byoc.app", 2), ("byoc.cli", 3)]
    ranks = [layer_of(name) for name, _ in found]
    own = layer_of("byoc.store.db")
    assert own is not None
    assert [rank is not None and rank > own for rank in ranks] == [False, True, True]
