"""`byoc serve`: the HTTP server."""

from __future__ import annotations

import argparse
import gc
import logging
import resource
import socket
import sys
from typing import TYPE_CHECKING, Any

from byoc.cli._common import SubParsers, add
from byoc.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

# File descriptors the process needs besides its client connections: the store, outgoing
# connections to CXone and platforms, logs.
RESERVED_FILES = 256


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (up to the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    return wanted if soft == resource.RLIM_INFINITY else soft


def server_config(
    app: Any, settings: Settings, *, host: str, port: int, **overrides: Any
) -> uvicorn.Config:
    """uvicorn as `byoc serve` runs it: timeouts and the connection bound from the settings."""
    import uvicorn

    from byoc.ops.server_protocol import ConnectionLimits, guarded_protocol

    max_connections = settings.http_max_connections
    files = raise_open_file_limit(max_connections + RESERVED_FILES)
    if files - RESERVED_FILES < max_connections:
        # Past the descriptor limit accept() fails and nobody gets in: shed load before that.
        max_connections = max(1, files - RESERVED_FILES)
        log.warning(
            "BYOC_HTTP_MAX_CONNECTIONS lowered to %d: the open-file limit is %d",
            max_connections,
            files,
        )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "log_config": None,
        "proxy_headers": True,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "timeout_keep_alive": settings.http_keep_alive_timeout_seconds,
        "http": guarded_protocol(
            ConnectionLimits(
                header_timeout=settings.http_header_timeout_seconds,
                max_connections=max_connections,
            )
        ),
        # Widget frames are small JSON; per-socket zlib state would cost ~45 KiB a socket.
        "ws_per_message_deflate": False,
        **overrides,
    }
    return uvicorn.Config(app, **options)


def bind_listeners(config: uvicorn.Config, settings: Settings) -> list[socket.socket]:
    """The sockets of one `byoc serve`, bound before the app starts (so one process or several
    can serve them): the main listener at the config's address and, with BYOC_OPS_PORT, the
    operations listener (`byoc.api.listeners` tells them apart by port)."""
    import uvicorn

    sockets = [config.bind_socket()]
    if settings.ops_port is not None:
        host = settings.ops_host or config.host
        ops = uvicorn.Config(config.app, host=host, port=settings.ops_port, log_config=None)
        sockets.append(ops.bind_socket())
        log.info("operations listener (/metrics, /healthz, /readyz) on %s:%d", host, ops.port)
    return sockets


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from byoc.app import create_app
    from byoc.ops.logging import configure as configure_logging

    port = args.port or settings.port
    if settings.ops_port == port:
        print(f"byoc serve: BYOC_OPS_PORT must differ from the port ({port})", file=sys.stderr)
        return 2
    configure_logging(settings)  # JSON lines, uvicorn's own loggers included
    app = create_app(settings)
    config = server_config(app, settings, host=args.host or settings.host, port=port)
    # Everything loaded so far (FastAPI, SQLAlchemy, pydantic, our modules) lives as long as the
    # process: moved out of the collector's sight, a full collection no longer walks it. Without
    # this, each full collection under load paused the event loop for ~60 ms (bench/README.md).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(config)
    server.run(sockets=bind_listeners(config, settings))
    return 0 if server.started else 3  # uvicorn's own exit code for a failed start


def register(sub: SubParsers) -> None:
    serve = add(sub, "serve", cmd_serve, "run the HTTP server")
    serve.add_argument("--host", help="bind address (default: BYOC_HOST)")
    serve.add_argument("--port", type=int, help="port (default: BYOC_PORT)")
