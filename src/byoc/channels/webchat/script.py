"""The widget's script: source files kept small, served as the one `widget.js` pages embed.

The parts under `static/widget/v1/src/` are joined in name order once, at start-up, and served
from memory with the validators a static file gets (ETag, Last-Modified, 304 on a match). The
ETag is a hash of the content, so every instance of one release answers the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from fastapi import APIRouter, Request, Response

SOURCE_DIR = Path(__file__).resolve().parents[2] / "static" / "widget" / "v1" / "src"
WIDGET_PATH = "/widget/v1/widget.js"


@dataclass(frozen=True)
class WidgetScript:
    body: bytes
    etag: str
    last_modified: str

    @classmethod
    def load(cls, source_dir: Path = SOURCE_DIR) -> WidgetScript:
        parts = sorted(source_dir.glob("*.js"))
        if not parts:
            raise FileNotFoundError(f"no widget sources in {source_dir}")
        body = b"".join(part.read_bytes() for part in parts)
        return cls(
            body=body,
            etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
            last_modified=formatdate(max(p.stat().st_mtime for p in parts), usegmt=True),
        )

    def not_modified(self, request: Request) -> bool:
        if if_none_match := request.headers.get("if-none-match"):
            tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
            return "*" in tags or self.etag in tags
        if if_modified_since := request.headers.get("if-modified-since"):
            try:
                since = parsedate_to_datetime(if_modified_since)
                return since >= parsedate_to_datetime(self.last_modified)
            except (TypeError, ValueError):
                return False
        return False


def widget_script_router(script: WidgetScript) -> APIRouter:
    router = APIRouter()
    validators = {"etag": script.etag, "last-modified": script.last_modified}

    async def widget_js(request: Request) -> Response:
        if script.not_modified(request):
            return Response(status_code=304, headers=validators)
        return Response(
            script.body, media_type="text/javascript; charset=utf-8", headers=validators
        )

    router.add_api_route(WIDGET_PATH, widget_js, methods=["GET", "HEAD"], include_in_schema=False)
    return router
