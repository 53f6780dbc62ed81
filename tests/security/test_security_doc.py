"""docs/security.md names the API routes it protects (each prefix written `/…/…` and each path
with parameters) as the app serves them. Whole paths without parameters (`/healthz`, `/metrics`)
are not checked here."""

from __future__ import annotations

import re
from pathlib import Path

from byoc.app import create_app
from byoc.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_the_routes_the_threat_model_names_exist() -> None:
    served = [
        _template(p) for p in create_app(Settings(database_url="sqlite://")).openapi()["paths"]
    ]
    named = re.findall(r"`(/[^`\s]+)`", DOC.read_text(encoding="utf-8"))
    # A prefix (`/api/v1/…`) or a whole path with parameters (`/webchat/v1/attachments/{id}/…`).
    routes = [n for n in named if n.endswith("/…") or "{" in n]
    assert len(routes) >= 4, routes
    unknown = [
        name
        for name in routes
        if not any(
            path.startswith(_template(name).removesuffix("…"))
            if name.endswith("/…")
            else path == _template(name)
            for path in served
        )
    ]
    assert unknown == []
