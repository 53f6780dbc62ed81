"""The browser console: a static page that drives the agent API (no build step)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import FileResponse, RedirectResponse, Response

_STATIC = resources.files("cxone_emulator") / "static"
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


def build_console_router() -> APIRouter:
    router = APIRouter()

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/console")

    @router.get("/console")
    async def console_page() -> Response:
        return FileResponse(str(_STATIC / "console.html"), media_type="text/html")

    @router.get("/static/{name}")
    async def static_file(name: str) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        # Only the package's own flat files: no path separators, known types.
        if "/" in name or "\\" in name or suffix not in _TYPES:
            return Response(status_code=404)
        path = _STATIC / name
        if not path.is_file():
            return Response(status_code=404)
        return FileResponse(str(path), media_type=_TYPES[suffix])

    return router
