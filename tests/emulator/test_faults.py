"""Fault injection: error rates, latency, hangs, rate limits, outages, `times`."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.box_receiver import CHANNEL_ID, inbound_message
from tests.support.emulator import Emulator


def _faults(emu: Emulator, **config: Any) -> dict[str, Any]:
    response = emu.admin.put("/emulator/faults", json=config)
    assert response.status_code == 200, response.text
    active: dict[str, Any] = response.json()
    return active


def _statuses(api: httpx.Client, count: int) -> list[int]:
    return [api.get("/channels").status_code for _ in range(count)]


def test_error_rate_with_a_seed_is_deterministic(emu: Emulator, api: httpx.Client) -> None:
    rule = {"match": "GET /channels", "errorRate": 0.5, "errorStatus": 500}
    _faults(emu, seed=7, rules=[rule])
    first = _statuses(api, 20)
    _faults(emu, seed=7, rules=[rule])
    second = _statuses(api, 20)
    assert first == second
    assert set(first) == {200, 500}


def test_default_error_status_is_503_with_a_cxone_body(emu: Emulator, api: httpx.Client) -> None:
    _faults(emu, rules=[{"match": "*", "errorRate": 1}])
    response = api.get("/channels")
    assert response.status_code == 503
    assert response.json()["errors"][0]["errorCode"] == "InjectedFault"


def test_faulted_request_is_logged_and_not_applied(emu: Emulator, api: httpx.Client) -> None:
    _faults(emu, rules=[{"match": "POST /channels/*/messages", "errorRate": 1.0}])
    assert api.get("/channels").status_code == 200  # other routes unaffected
    response = api.post(f"/channels/{CHANNEL_ID}/messages", json=inbound_message())
    assert response.status_code == 503
    emu.admin.delete("/emulator/faults")
    assert api.get("/contacts").json()["hits"] == 0
    logged = emu.requests(path_contains="/messages", method="POST")
    assert [entry["status"] for entry in logged] == [503]
    assert logged[0]["requestBody"]["idOnExternalPlatform"] == "msg-1"


def test_times_limits_how_often_a_rule_applies(emu: Emulator, api: httpx.Client) -> None:
    _faults(emu, rules=[{"match": "GET /channels", "errorRate": 1, "times": 2}])
    assert _statuses(api, 4) == [503, 503, 200, 200]
    assert emu.admin.get("/emulator/faults").json()["rules"][0]["applied"] == 2


def test_latency_delays_the_answer(emu: Emulator, api: httpx.Client) -> None:
    _faults(emu, rules=[{"match": "GET /channels", "latencyMs": 250}])
    started = time.monotonic()
    assert api.get("/channels").status_code == 200
    assert time.monotonic() - started >= 0.25


def test_hang_trips_a_client_timeout_then_answers_504(emu: Emulator, api: httpx.Client) -> None:
    _faults(emu, rules=[{"match": "GET /channels", "hangSeconds": 5}])
    with pytest.raises(httpx.ReadTimeout):  # the client gave up: the emulator had not answered
        api.get("/channels", timeout=0.3)
    _faults(emu, rules=[{"match": "GET /channels", "hangSeconds": 0.2}])
    assert api.get("/channels").status_code == 504


def test_rate_limit_is_429_with_retry_after(emu: Emulator, api: httpx.Client) -> None:
    _faults(emu, rules=[{"match": "GET /*", "rateLimitRate": 1, "retryAfterSeconds": 7}])
    response = api.get("/channels")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_outage_window_fails_everything_until_it_ends(emu: Emulator, api: httpx.Client) -> None:
    _faults(emu, rules=[], outageSeconds=0.4)
    assert api.get("/channels").status_code == 503
    token = emu.admin.post(
        "/auth/token",
        data={"grant_type": "password", "username": "u", "password": "p"},
        auth=("emulator-app", "emulator-app-secret"),
    )
    assert token.status_code == 503
    assert emu.admin.get("/emulator/contacts").status_code == 200  # agent API unaffected
    time.sleep(0.5)
    assert api.get("/channels").status_code == 200


def test_token_endpoint_can_be_faulted(emu: Emulator) -> None:
    _faults(emu, rules=[{"match": "POST /auth/token", "errorRate": 1, "times": 1}])
    with pytest.raises(httpx.HTTPStatusError):
        emu.token()
    assert emu.token()


def test_faults_get_and_delete(emu: Emulator, api: httpx.Client) -> None:
    active = _faults(emu, seed=3, rules=[{"match": "*", "errorRate": 1}])
    assert active["seed"] == 3
    assert emu.admin.get("/emulator/faults").json()["rules"][0]["errorStatus"] == 503
    assert emu.admin.delete("/emulator/faults").status_code == 204
    assert emu.admin.get("/emulator/faults").json()["rules"] == []
    assert api.get("/channels").status_code == 200


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"errorRate": 2}, "rules[0].errorRate"),
        ({"errorStatus": 200}, "rules[0].errorStatus"),
        ({"latencyMs": "slow"}, "rules[0].latencyMs"),
    ],
)
def test_bad_fault_config_is_400(emu: Emulator, rule: dict[str, Any], field: str) -> None:
    response = emu.admin.put("/emulator/faults", json={"rules": [rule]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
