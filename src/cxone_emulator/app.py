"""`create_app(config)`: the whole emulator, with its state, built per call (no globals)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from cxone_emulator.agent_api import build_agent_router
from cxone_emulator.agents import AgentDesk
from cxone_emulator.auth import build_auth_router
from cxone_emulator.callbacks import CallbackClient
from cxone_emulator.config import EmulatorConfig
from cxone_emulator.console import build_console_router
from cxone_emulator.de_api import build_de_router
from cxone_emulator.de_setup_api import build_public_router
from cxone_emulator.errors import CxoneError, handle_cxone_error, handle_http_error
from cxone_emulator.faults import FaultInjector, FaultMiddleware
from cxone_emulator.recorder import EventLog, RequestRecorder
from cxone_emulator.state import EmulatorState


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    requests_log = EventLog(config.log_limit)
    callbacks_log = EventLog(config.log_limit)
    faults = FaultInjector(config.seed)
    callbacks = CallbackClient(state, callbacks_log)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=config.callback_timeout_seconds)
        # The callback client lives exactly as long as the server, never at import time.
        async with aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=200),
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as client:
            callbacks.http_client = client
            try:
                yield
            finally:
                callbacks.http_client = None

    app = FastAPI(
        # FastAPI's own OpenTelemetry hooks look up the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="CXone emulator",
        lifespan=lifespan,
        docs_url="/emulator/docs",
        openapi_url="/emulator/openapi.json",
        redoc_url=None,
    )
    app.state.emulator = state
    app.add_exception_handler(CxoneError, handle_cxone_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)

    desk = AgentDesk(state, callbacks)
    app.include_router(build_auth_router(state))
    app.include_router(build_public_router(state))
    app.include_router(build_de_router(state))
    app.include_router(build_agent_router(state, desk, requests_log, callbacks_log, faults))
    app.include_router(build_console_router())

    base = config.base_path

    def is_recorded(path: str) -> bool:
        return (
            path.startswith("/auth/")
            or path.startswith("/.well-known/")
            or (bool(base) and path.startswith(base + "/"))
        )

    # Added last = outermost: the recorder also sees the responses the fault injector makes.
    app.add_middleware(FaultMiddleware, injector=faults, base_path=base)
    app.add_middleware(RequestRecorder, log=requests_log, is_recorded=is_recorded)
    return app
