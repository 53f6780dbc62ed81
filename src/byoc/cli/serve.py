"""`byoc serve`: the HTTP server, in one process or in `--workers N` behind one socket."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import resource
import socket
import sys
from typing import TYPE_CHECKING, Any

from byoc.cli._common import SubParsers, add, collector_paused

# The app, uvicorn and the store load in the functions that need them: `byoc serve --help`
# and refused arguments stay cheap (start-up time).
if TYPE_CHECKING:
    import uvicorn

    from byoc.ops.server_protocol import ConnectionLimits
    from byoc.settings import Settings

log = logging.getLogger(__name__)

# How long the store may take to answer before `byoc serve` starts (PostgreSQL's connect).
STORE_CHECK_SECONDS = 15.0

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


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The guards of each serving process; the connection bound fits its open-file limit (a
    limit worker processes inherit)."""
    from byoc.ops.server_protocol import ConnectionLimits

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
    return ConnectionLimits(
        header_timeout=settings.http_header_timeout_seconds, max_connections=max_connections
    )


def server_options(settings: Settings, *, host: str, port: int) -> dict[str, Any]:
    """uvicorn's options as `byoc serve` sets them, but the app and its HTTP protocol."""
    return {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "log_config": None,
        "proxy_headers": True,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "timeout_keep_alive": settings.http_keep_alive_timeout_seconds,
        # Widget frames are small JSON; per-socket zlib state would cost ~45 KiB a socket.
        "ws_per_message_deflate": False,
    }


def server_config(
    app: Any, settings: Settings, *, host: str, port: int, **overrides: Any
) -> uvicorn.Config:
    """uvicorn as `byoc serve` runs it: timeouts and the connection bound from the settings."""
    import uvicorn

    from byoc.ops.server_protocol import guarded_protocol

    options = {
        **server_options(settings, host=host, port=port),
        "http": guarded_protocol(connection_limits(settings)),
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


def worker_count(settings: Settings, requested: int | None) -> int:
    """`--workers`, else BYOC_WORKERS, else one per available core on PostgreSQL and one on
    SQLite."""
    from byoc.store import dialect

    if requested is not None:
        return requested
    if settings.workers is not None:
        return settings.workers
    if dialect.backend(settings.database_url) == dialect.SQLITE:
        return 1
    from byoc.cli._workers import available_cores  # with uvicorn's supervisor (start-up time)

    return available_cores()


def sqlite_refusal(settings: Settings, workers: int, requested: int | None) -> str | None:
    """Why these settings cannot run `workers` processes, or None."""
    from byoc.store import dialect

    if workers == 1 or dialect.backend(settings.database_url) != dialect.SQLITE:
        return None
    asked = f"--workers {workers}" if requested is not None else f"BYOC_WORKERS={workers}"
    return (
        f"{asked} needs PostgreSQL (BYOC_DATABASE_URL=postgresql://…): on SQLite one process "
        "holds the single writer and the widget sockets' wake-ups are in-process"
    )


def serve_one(settings: Settings, *, host: str, port: int) -> int:
    with collector_paused(then_freeze=True):  # until the app is built (start-up time)
        import uvicorn

        from byoc.app import create_app

        app = create_app(settings)
        config = server_config(app, settings, host=host, port=port)
    server = uvicorn.Server(config)
    server.run(sockets=bind_listeners(config, settings))
    return 0 if server.started else 3  # uvicorn's own exit code for a failed start


def serve_workers(settings: Settings, *, host: str, port: int, workers: int) -> int:
    with collector_paused():  # while the supervisor's modules load (start-up time)
        from byoc.cli._workers import WorkerConfig, supervise

        config = WorkerConfig(
            settings,
            connection_limits(settings),
            workers=workers,
            **server_options(settings, host=host, port=port),
        )
    return supervise(config, bind_listeners(config, settings))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from byoc.ops.logging import configure as configure_logging
    from byoc.store import dialect

    try:
        workers = worker_count(settings, args.workers)
        refusal = sqlite_refusal(settings, workers, args.workers)
    except dialect.UnsupportedDatabase as exc:
        refusal = f"BYOC_DATABASE_URL: {exc}"
    if refusal is not None:
        print(f"byoc serve: {refusal}", file=sys.stderr)
        return 2
    host, port = args.host or settings.host, args.port or settings.port
    if settings.ops_port == port:
        print(f"byoc serve: BYOC_OPS_PORT must differ from the port ({port})", file=sys.stderr)
        return 2
    if (exposed := development_key_exposed(settings, host)) is not None:
        print(f"byoc serve: {exposed}", file=sys.stderr)
        return 2
    if (unreachable := store_unreachable(settings)) is not None:
        print(f"byoc serve: {unreachable}", file=sys.stderr)
        return 1
    configure_logging(settings)  # JSON lines, uvicorn's own loggers included
    if workers == 1:
        return serve_one(settings, host=host, port=port)
    return serve_workers(settings, host=host, port=port, workers=workers)


def development_key_exposed(settings: Settings, host: str) -> str | None:
    """Why serving on `host` is refused, or None: the development signing key is public (it is
    in this source), so whoever reaches the port could sign box tokens; it serves loopback only."""
    from byoc.settings import is_placeholder

    if not is_placeholder(settings.token_signing_key.get_secret_value()):
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (
        f"the development signing key serves loopback only, not {host}: set"
        " BYOC_TOKEN_SIGNING_KEY to a random value (and BYOC_ENVIRONMENT=production)"
    )


def store_unreachable(settings: Settings) -> str | None:
    """Why a PostgreSQL server does not answer, or None: said once, in one line, before any
    process starts (each worker's start-up would fail with a traceback of its own). An SQLite
    file is never out of reach: the embedded default starts without the extra connection."""
    from byoc.store import Database, StoreError, dialect

    if dialect.backend(settings.database_url) == dialect.SQLITE:
        return None

    async def ping() -> None:
        db = Database(settings.database_url)
        try:
            await asyncio.wait_for(db.ping(), STORE_CHECK_SECONDS)
        finally:
            await db.close()

    try:
        asyncio.run(ping())
    except StoreError as exc:
        return str(exc)
    except TimeoutError:
        return f"the database did not answer within {STORE_CHECK_SECONDS:g} s"
    return None


def positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def register(sub: SubParsers) -> None:
    serve = add(sub, "serve", cmd_serve, "run the HTTP server")
    serve.add_argument("--host", help="bind address (default: BYOC_HOST)")
    serve.add_argument("--port", type=int, help="port (default: BYOC_PORT)")
    serve.add_argument(
        "--workers",
        type=positive,
        help="processes serving the port (default: BYOC_WORKERS, else one per available core "
        "on PostgreSQL; SQLite runs one)",
    )
