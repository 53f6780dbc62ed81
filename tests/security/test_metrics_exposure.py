"""`/metrics` is not public in production: an operations listener (`BYOC_OPS_PORT`) or a bearer
token (`BYOC_METRICS_TOKEN`), and production refuses to start with neither."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from websockets.exceptions import InvalidStatus

from byoc.app import create_app
from byoc.settings import Settings, settings_error_lines
from tests.support import loopback
from tests.support.cluster import Instance, settings_env
from tests.support.problems import assert_problem
from tests.support.servers import free_port, serve
from tests.support.waiting import run_async
from tests.support.widget import widget_at

NEITHER = "GET /metrics would be public on the main listener: set BYOC_OPS_PORT"


def production_values(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """Production settings that pass every other check; CXone is a name that never resolves."""
    return {
        "environment": "production",
        "database_url": f"sqlite:///{tmp_path / 'byoc.db'}",
        "token_signing_key": secrets.token_urlsafe(48),
        "public_url": "https://byoc.example.com",
        "cxone_api_url": "https://cxone.invalid/dfo/3.0",
        "cxone_token_url": "https://cxone.invalid/auth/token",
        "cxone_access_key_id": "AK-" + secrets.token_hex(8),
        "cxone_access_key_secret": secrets.token_urlsafe(32),
        "cxone_client_id": "app-" + secrets.token_hex(4),
        "cxone_client_secret": secrets.token_urlsafe(32),
        "cxone_timeout_seconds": 1.0,
        **overrides,
    }


def byoc_families(exposition: str) -> dict[str, Any]:
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    assert "byoc_build_info" in families
    assert "byoc_http_request_duration_seconds" in families
    return families


def request_count(families: dict[str, Any], route: str) -> float:
    return sum(
        float(sample.value)
        for sample in families["byoc_http_request_duration_seconds"].samples
        if sample.name.endswith("_count") and sample.labels["route"] == route
    )


# --- an operations listener ------------------------------------------------------------------


@pytest.mark.parametrize("with_token", [False, True], ids=["ops-port", "ops-port-and-token"])
def test_with_an_ops_port_metrics_are_served_there_only(tmp_path: Path, with_token: bool) -> None:
    token = secrets.token_urlsafe(32) if with_token else ""
    ops_port = free_port()
    settings = Settings(**production_values(tmp_path, ops_port=ops_port, metrics_token=token))
    instance = Instance("ops", settings, tmp_path).start()  # real `byoc serve`, two sockets
    ops = f"http://127.0.0.1:{ops_port}"
    scraper = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with loopback.client(timeout=10) as http:
            # The main listener: everything but /metrics, which is as absent as any unknown path.
            refused = http.get(instance.url + "/metrics", headers=scraper)
            assert_problem(refused, 404, "not-found")
            assert refused.json() == http.get(instance.url + "/no/such/page").json()
            assert http.get(instance.url + "/healthz").status_code == 200
            assert http.get(instance.url + "/openapi.json").status_code == 200

            # The operations listener: /metrics of the same app, counting the main listener's
            # requests, and the probes; nothing else.
            if token:
                assert_problem(http.get(ops + "/metrics"), 401, "unauthenticated")
            scrape = http.get(ops + "/metrics", headers=scraper)
            assert scrape.status_code == 200, scrape.text
            assert scrape.headers["content-type"].startswith("text/plain")
            families = byoc_families(scrape.text)
            assert request_count(families, "/healthz") >= 1
            assert request_count(families, "unmatched") >= 2  # /metrics and /no/such/page
            assert http.get(ops + "/healthz").json() == {"status": "ok"}
            assert "checks" in http.get(ops + "/readyz", timeout=30).json()
            for path in ("/openapi.json", "/docs", "/widget/v1/widget.js"):
                assert_problem(http.get(ops + path), 404, "not-found")
            assert_problem(
                http.post(ops + "/api/v1/channels/chat_1/messages", json={"text": "hi"}),
                404,
                "not-found",
            )

        async def open_widget_socket() -> None:
            async with widget_at(ops, "chat_1", "https://site.example"):
                pass

        with pytest.raises(InvalidStatus) as handshake:
            run_async(open_widget_socket())
        assert handshake.value.response.status_code == 403
    finally:
        instance.stop()


def test_the_ops_port_must_differ_from_the_main_one(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(port=8080, ops_port=8080)
    (line,) = settings_error_lines(caught.value)
    assert line.startswith("BYOC_OPS_PORT: ")
    assert "must differ from BYOC_PORT" in line
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BYOC_")},
        "BYOC_DATABASE_URL": f"sqlite:///{tmp_path / 'byoc.db'}",
        "BYOC_OPS_PORT": str(port),
    }
    result = subprocess.run(
        [sys.executable, "-m", "byoc.cli", "serve", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"byoc serve: BYOC_OPS_PORT must differ from the port ({port})"


# --- a bearer token --------------------------------------------------------------------------


def test_with_a_token_metrics_on_the_main_listener_need_it(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(32)
    settings = Settings(**production_values(tmp_path, metrics_token=token))
    wrong: list[dict[str, str] | dict[bytes, bytes]] = [
        {},
        {"Authorization": "Bearer " + secrets.token_urlsafe(32)},
        {"Authorization": "Bearer " + token[:-1]},
        {"Authorization": "Basic " + token},
        {"Authorization": token},
        {"Authorization": "Bearer " + token + "x"},
        {b"Authorization": ("Bearer " + token[:-2] + "é").encode("utf-8")},
        {b"Authorization": b"Bearer \xff\xfe" + token.encode()},
    ]
    with serve(create_app(settings)) as server, loopback.client(timeout=10) as http:
        for headers in wrong:
            answer = http.get(server.url + "/metrics", headers=headers)
            assert_problem(answer, 401, "unauthenticated")
            assert answer.headers["www-authenticate"] == "Bearer"
        assert_problem(http.get(f"{server.url}/metrics?token={token}"), 401, "unauthenticated")
        for scheme in ("Bearer", "bearer"):
            answer = http.get(
                server.url + "/metrics", headers={"Authorization": f"{scheme} {token}"}
            )
            assert answer.status_code == 200, answer.text
            byoc_families(answer.text)
        assert http.get(server.url + "/healthz").status_code == 200  # probes need no token


@pytest.mark.parametrize("token", ["short-token", "m" * 40, "metrics!" * 5])
def test_a_weak_metrics_token_is_refused_in_production(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**production_values(tmp_path, metrics_token=token))
    (line,) = settings_error_lines(caught.value)
    assert line.startswith("BYOC_METRICS_TOKEN ")


# --- neither ---------------------------------------------------------------------------------


def test_production_with_neither_refuses_to_start(tmp_path: Path) -> None:
    values = production_values(tmp_path)
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    (line,) = settings_error_lines(caught.value)
    assert line.startswith(NEITHER), line

    env = {k: v for k, v in os.environ.items() if not k.startswith("BYOC_")}
    env |= settings_env(Settings(**{**values, "environment": "test"}))
    env["BYOC_ENVIRONMENT"] = "production"
    result = subprocess.run(
        [sys.executable, "-m", "byoc.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"byoc: invalid setting: {line}"]


@pytest.mark.parametrize("environment", ["development", "test"])
def test_outside_production_metrics_stay_open_without_either(
    tmp_path: Path, environment: str
) -> None:
    values = production_values(tmp_path, environment=environment)
    with serve(create_app(Settings(**values))) as server:
        answer = loopback.get(server.url + "/metrics", timeout=10)
    assert answer.status_code == 200
    byoc_families(answer.text)
