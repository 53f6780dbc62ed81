"""`byoc serve`: the HTTP server."""

from __future__ import annotations

import argparse
import gc

from byoc.cli._common import SubParsers, add
from byoc.settings import Settings


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from byoc.app import create_app
    from byoc.ops.logging import configure as configure_logging

    configure_logging(settings)  # JSON lines, uvicorn's own loggers included
    app = create_app(settings)
    # Everything loaded so far (FastAPI, SQLAlchemy, pydantic, our modules) lives as long as the
    # process: moved out of the collector's sight, a full collection no longer walks it. Without
    # this, each full collection under load paused the event loop for ~60 ms (bench/README.md).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        # Widget frames are small JSON; per-socket zlib state would cost ~45 KiB a socket.
        ws_per_message_deflate=False,
    )
    return 0


def register(sub: SubParsers) -> None:
    serve = add(sub, "serve", cmd_serve, "run the HTTP server")
    serve.add_argument("--host", help="bind address (default: BYOC_HOST)")
    serve.add_argument("--port", type=int, help="port (default: BYOC_PORT)")
