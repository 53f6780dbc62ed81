"""Customer custom-field definitions declared in a file, applied to DE (contract §3.7).

The file (`BYOC_CUSTOM_FIELDS_FILE` or `--file`) is JSON or TOML:

    [{"ident": "plan", "label": "Plan", "type": "list", "values": ["free", "pro"]},
     {"ident": "email", "label": "E-mail", "type": "email", "isRequired": true}]

    # TOML: an array of tables named `fields`
    [[fields]]
    ident = "plan"
    label = "Plan"
    type = "list"
    values = ["free", "pro"]

A JSON object with a `fields` list is read like a bare list. Every problem of the file is
reported with the position of the field it concerns (`field #2 (plan): ...`) before anything
is sent. `PUT /customers/custom-field-definitions` creates or updates by `ident`, so applying
the same file twice changes nothing.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byoc.cxone import CustomFieldDefinition, CxoneError, DeClient

FIELD_TYPES = ("text", "email", "list")
_KEYS = {"ident", "label", "type", "isRequired", "isEditable", "values"}


class CustomFieldsFileError(ValueError):
    """The file cannot be read or declares invalid fields; `problems` lists each one."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


@dataclass
class SyncSummary:
    applied: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _entries(path: Path) -> list[Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CustomFieldsFileError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    try:
        if path.suffix.lower() == ".toml":
            document: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            document = json.loads(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise CustomFieldsFileError(str(path), [f"not valid {kind}: {exc}"]) from exc
    if isinstance(document, dict) and "fields" in document:
        document = document["fields"]
    if not isinstance(document, list):
        raise CustomFieldsFileError(
            str(path), ["must be a list of fields (TOML: [[fields]] tables)"]
        )
    return document


def _check(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return ["must be an object with ident, label and type"]
    problems = [f"unknown key {key!r}" for key in sorted(set(entry) - _KEYS)]
    for key in ("ident", "label"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key}: is required and must be a non-empty string")
    kind = entry.get("type", "text")
    if kind not in FIELD_TYPES:
        problems.append(f"type: must be one of {', '.join(FIELD_TYPES)}, not {kind!r}")
    for key in ("isRequired", "isEditable"):
        if key in entry and not isinstance(entry[key], bool):
            problems.append(f"{key}: must be true or false")
    values = entry.get("values")
    if kind == "list":
        if not isinstance(values, list) or not values:
            problems.append("values: a list field needs a non-empty list of values")
        elif not all(isinstance(v, str | dict) for v in values):
            problems.append("values: each value must be a string or an object")
    elif values is not None:
        problems.append("values: only list fields take values")
    return problems


def load_definitions(path: str | Path) -> list[CustomFieldDefinition]:
    """Read and check every field of the file; raise with all problems at once."""
    entries = _entries(Path(path))
    problems: list[str] = []
    seen: dict[str, int] = {}
    for position, entry in enumerate(entries, start=1):
        ident = entry.get("ident") if isinstance(entry, dict) else None
        where = f"field #{position}" + (f" ({ident})" if isinstance(ident, str) else "")
        problems.extend(f"{where}: {problem}" for problem in _check(entry))
        if isinstance(ident, str) and ident:
            if ident in seen:
                problems.append(f"{where}: ident repeats field #{seen[ident]}")
            seen.setdefault(ident, position)
    if problems:
        raise CustomFieldsFileError(str(path), problems)
    return [CustomFieldDefinition.model_validate(entry) for entry in entries]


async def sync_custom_fields(
    client: DeClient,
    definitions: list[CustomFieldDefinition],
    *,
    progress: Callable[[str], None] = lambda _line: None,
) -> SyncSummary:
    """PUT every definition; one refused field does not stop the others."""
    summary = SyncSummary()
    for definition in definitions:
        try:
            await client.put_custom_field_definition(definition)
        except CxoneError as exc:
            progress(f"failed  {definition.ident}: {exc}")
            summary.failed.append((definition.ident, str(exc)))
        else:
            progress(f"applied {definition.ident} ({definition.type})")
            summary.applied.append(definition.ident)
    return summary
