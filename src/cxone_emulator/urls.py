"""The emulator's own external URL, used in discovery documents and attachment links."""

from __future__ import annotations

from starlette.requests import Request

from cxone_emulator.config import EmulatorConfig


def root_url(request: Request, config: EmulatorConfig) -> str:
    if config.public_url:
        return config.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")
