"""`/readyz`: store, schema and a CXone token, the CXone verdict cached between probes."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from fastapi import FastAPI

from byoc.api.deps import get_cxone_readiness
from byoc.api.readiness import CachedVerdict
from byoc.app import create_app
from tests.support import loopback
from tests.support.emulator import running_emulator
from tests.support.servers import serve
from tests.support.stack import middleware_settings
from tests.support.waiting import wait_for


def with_verdict(app: FastAPI, verdict: CachedVerdict) -> FastAPI:
    """The app, its readiness cache replaced by one the test can reach."""

    async def cached() -> CachedVerdict:
        return verdict

    app.dependency_overrides[get_cxone_readiness] = cached
    return app


def test_readyz_follows_cxone_within_the_cache_window(tmp_path: Path) -> None:
    with ExitStack() as stack:
        emulator_context = running_emulator()
        emulator = stack.enter_context(emulator_context)
        verdict = CachedVerdict(timeout_seconds=3.0)
        app = with_verdict(create_app(middleware_settings(tmp_path, emulator)), verdict)
        server = stack.enter_context(serve(app))
        client = stack.enter_context(loopback.client(base_url=server.url, timeout=10))

        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"store": "ok", "migrations": "ok", "cxone": "ok"}
        # Probes within the window do not reach CXone again.
        for _ in range(5):
            assert client.get("/readyz").status_code == 200
        assert len(emulator.requests(path_contains="/channels", method="GET")) == 1
        assert client.get("/healthz").json() == {"status": "ok"}

        verdict.ttl_seconds = 0.5
        emulator_context.__exit__(None, None, None)  # CXone goes away
        answer = wait_for(
            lambda: (r := client.get("/readyz")).status_code != 200 and r,
            timeout=5,
            what="not ready once CXone went away",
        )
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "not ready"
        assert body["checks"]["store"] == "ok"
        assert body["checks"]["cxone"].startswith("unavailable")
        # Liveness never depends on CXone.
        assert client.get("/healthz").status_code == 200


def test_readyz_is_not_ready_with_wrong_cxone_credentials(tmp_path: Path) -> None:
    with running_emulator() as emulator:
        settings = middleware_settings(tmp_path, emulator, cxone_access_key_secret="wrong")
        with serve(create_app(settings)) as server:
            answer = loopback.get(server.url + "/readyz", timeout=10)
    assert answer.status_code == 503
    assert answer.json()["checks"]["cxone"].startswith("unavailable")
    # The probe is public: no URL or cause of the failure in it (they are in the log).
    assert emulator.url.split("//")[1] not in answer.text
    assert "token" not in answer.json()["checks"]["cxone"]
