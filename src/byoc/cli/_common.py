"""What the command modules share: the parser helper, the store and CXone contexts, output.

Exit status of every command: 0 done, 1 something failed (CXone, the store, an unknown id),
2 the input is wrong. Progress lines go to stdout, or to stderr with `--json` so stdout stays
one document.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, TypeAlias

from byoc.errors import ByocError, InvalidInput

# The store, the settings and the HTTP client load when a command runs, not with the parser:
# `byoc … --help` and refused arguments stay cheap (start-up time).
if TYPE_CHECKING:
    from byoc.http import HttpClient
    from byoc.settings import Settings
    from byoc.store import Database
    from byoc.tenancy import TenantClients

# Strings: the settings load later, and argparse does not make the class subscriptable.
Command: TypeAlias = "Callable[[Settings, argparse.Namespace], int]"
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


# A server's collection thresholds: a first-generation pass after 5,000 new container objects,
# not Python's 700. What a request allocates lives until its response (a few milliseconds,
# across awaits), and the server's objects are freed by their reference counts: under load
# the passes collected next to nothing, and cost more as the backlog grew. In customer-message
# runs on PostgreSQL that fell behind at 500/s, the collections took about a quarter of the
# time they took at 700, with no full collection during the load; a generation-1 pass then
# pauses longer (up to ~75 ms there, against ~30 ms). Below saturation the CPU did not differ
# beyond the noise (bench/README.md, "2026-12-01 ... collector thresholds").
SERVER_GC_THRESHOLDS: Final = (5_000, 10, 10)


@contextmanager
def collector_paused(*, then_freeze: bool = False) -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, and back on after it (if it was).

    Start-up allocates much and frees little (modules, classes, pydantic schemas, routes): the
    collector's passes over it found next to nothing and cost ~0.15 s, an eighth of the CPU of
    a `byoc serve` start (~290 collections while its modules load).

    `then_freeze`, for a server whose block built its app: what was built lives as long as the
    process, so it is moved out of the collector's sight once the block ends, and a full
    collection no longer walks it (each one paused the event loop for ~60 ms under load,
    bench/README.md). The server then collects young objects less often
    (`SERVER_GC_THRESHOLDS`).
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
        if then_freeze:
            gc.collect()
            gc.freeze()
            gc.set_threshold(*SERVER_GC_THRESHOLDS)
    finally:
        if was_on:
            gc.enable()


def add(parent: SubParsers, name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
    p = parent.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(func=func)
    return p


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Database]:
    """The store, at the current schema, with the default tenant in it.

    It migrates only where start-up would (`BYOC_AUTO_MIGRATE`); otherwise a database that is
    behind stops the command with one line saying what to run.

    The default tenant is the server's: `byoc serve` writes it from its environment at every
    start. A command adds it only to a database that has none. It never rewrites it from its
    own environment, which may lack the server's `BYOC_CXONE_*` settings: the running server's
    next CXone call would go where the command's defaults point. When the two differ, the
    command logs a warning and uses the stored tenant.
    """
    from byoc.store import Database, tenants
    from byoc.store.migrations import bring_current
    from byoc.tenancy import default_tenant

    db = Database(settings.database_url)
    try:
        await bring_current(db, migrate=settings.auto_migrate)
        own = default_tenant(settings)
        if await db.run_write(tenants.add_tenant_if_missing, own) != own:
            logging.getLogger("byoc.cli").warning(
                "the stored default tenant differs from this command's BYOC_CXONE_* settings;"
                " the command uses the stored one (`byoc serve` writes it at start)"
            )
        yield db
    finally:
        await db.close()


async def with_db(settings: Settings, work: Callable[[Database], Awaitable[int]]) -> int:
    async with open_store(settings) as db:
        return await work(db)


@dataclass
class Context:
    db: Database
    http: HttpClient
    tenants: TenantClients


@asynccontextmanager
async def _context(settings: Settings) -> AsyncIterator[Context]:
    from byoc.http import HttpClient  # only the commands that call out load aiohttp
    from byoc.tenancy import TenantClients

    async with open_store(settings) as db, HttpClient(max_connections=8) as http:
        yield Context(db, http, TenantClients(db, http, timeout=settings.cxone_timeout_seconds))


def progress(as_json: bool) -> Callable[[str], None]:
    stream = sys.stderr if as_json else sys.stdout

    def show(line: str) -> None:
        print(f"-> {line}", file=stream, flush=True)

    return show


def confirmed(question: str, *, yes: bool) -> bool:
    """Whether to go on with something that cannot be undone: asked on a terminal (the answer
    must be y or yes), not asked with `--yes` or without a terminal (a script's run)."""
    if yes or not sys.stdin.isatty():
        return True
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def fail(message: str, status: int = 1) -> int:
    print(f"byoc: {message}", file=sys.stderr)
    return status


def run(settings: Settings, work: Callable[[Context], Awaitable[int]]) -> int:
    from byoc.cxone import CxoneError

    async def main() -> int:
        async with _context(settings) as ctx:
            try:
                return await work(ctx)
            except LookupError as exc:  # an unknown tenant, from TenantClients
                return fail(str(exc.args[0]) if exc.args else str(exc))
            except InvalidInput as exc:
                return fail(exc.detail, 2)
            except ByocError as exc:
                return fail(exc.detail)
            except CxoneError as exc:
                return fail(f"CXone: {exc}")

    return asyncio.run(main())
