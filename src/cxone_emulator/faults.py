"""Fault injection for the DE API and the token endpoint.

Rules are matched against `METHOD path` where path is below the base path (`POST
/channels/*/messages`) or the root path for `/auth/token`. The first rule that matches and has
`times` left decides. Random draws come from one `random.Random(seed)`, so a seed replays the
same sequence of failures. A faulted request never reaches the handlers, so state is unchanged.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from cxone_emulator.errors import CxoneError, error_response, invalid
from cxone_emulator.validation import (
    JsonObject,
    object_items,
    optional_int,
    optional_number,
    optional_str,
    required_list,
)


@dataclass
class FaultRule:
    match: str = "*"
    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: int = 0
    hang_seconds: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_seconds: int = 1
    times: int | None = None
    applied: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.match.strip() == "*":
            return True
        rule_method, _, rule_path = self.match.strip().partition(" ")
        method_ok = rule_method == "*" or rule_method.upper() == method.upper()
        return method_ok and fnmatchcase(path, rule_path.strip() or "*")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.applied >= self.times

    def to_json(self) -> JsonObject:
        return {
            "match": self.match,
            "errorRate": self.error_rate,
            "errorStatus": self.error_status,
            "latencyMs": self.latency_ms,
            "hangSeconds": self.hang_seconds,
            "rateLimitRate": self.rate_limit_rate,
            "retryAfterSeconds": self.retry_after_seconds,
            "times": self.times,
            "applied": self.applied,
        }


def _rate(body: JsonObject, path: str) -> float:
    value = optional_number(body, path)
    if value is None:
        return 0.0
    if not 0.0 <= value <= 1.0:
        raise invalid(path, "must be between 0 and 1", "InvalidValue")
    return value


def parse_rule(body: JsonObject, index: int) -> FaultRule:
    prefix = f"rules[{index}]"

    try:
        rule = FaultRule(
            match=optional_str(body, "match") or "*",
            error_rate=_rate(body, "errorRate"),
            error_status=optional_int(body, "errorStatus") or 503,
            latency_ms=optional_int(body, "latencyMs") or 0,
            hang_seconds=optional_number(body, "hangSeconds") or 0.0,
            rate_limit_rate=_rate(body, "rateLimitRate"),
            retry_after_seconds=optional_int(body, "retryAfterSeconds") or 1,
            times=optional_int(body, "times"),
        )
    except CxoneError as exc:
        # Re-anchor the field path on the rule's position in the request.
        raise invalid(
            f"{prefix}.{exc.field}", exc.message.split(": ", 1)[-1], exc.error_code
        ) from exc
    if not 400 <= rule.error_status <= 599:
        raise invalid(f"{prefix}.errorStatus", "must be an HTTP error status (400-599)")
    return rule


class FaultInjector:
    def __init__(self, seed: int | None) -> None:
        self.rules: list[FaultRule] = []
        self.seed = seed
        self.rng = random.Random(seed)
        self.outage_until: float | None = None

    def configure(self, body: JsonObject, default_seed: int | None) -> None:
        items = object_items(body, "rules", required_list(body, "rules", allow_empty=True))
        rules = [parse_rule(item, index) for index, item in enumerate(items)]
        seed = optional_int(body, "seed")
        outage = optional_number(body, "outageSeconds")
        self.rules = rules
        self.seed = seed if seed is not None else default_seed
        self.rng = random.Random(self.seed)
        self.outage_until = time.monotonic() + outage if outage else None

    def clear(self, default_seed: int | None) -> None:
        self.rules = []
        self.seed = default_seed
        self.rng = random.Random(default_seed)
        self.outage_until = None

    def to_json(self) -> JsonObject:
        remaining = None
        if self.outage_until is not None:
            remaining = max(0.0, self.outage_until - time.monotonic())
        return {
            "seed": self.seed,
            "rules": [rule.to_json() for rule in self.rules],
            "outageRemainingSeconds": remaining,
        }

    def decide(self, method: str, path: str) -> tuple[FaultRule | None, CxoneError | None]:
        """Pick the matching rule and, with the seeded generator, the error it injects."""
        if self.outage_until is not None and time.monotonic() < self.outage_until:
            return None, CxoneError(503, "emulated outage", "ServiceUnavailable")
        for rule in self.rules:
            if rule.exhausted or not rule.matches(method, path):
                continue
            error: CxoneError | None = None
            if rule.rate_limit_rate and self.rng.random() < rule.rate_limit_rate:
                error = CxoneError(
                    429,
                    "emulated rate limit",
                    "TooManyRequests",
                    headers={"Retry-After": str(rule.retry_after_seconds)},
                )
            elif rule.error_rate and self.rng.random() < rule.error_rate:
                error = CxoneError(rule.error_status, "emulated failure", "InjectedFault")
            if error is not None or rule.latency_ms or rule.hang_seconds:
                rule.applied += 1
                return rule, error
            return None, None
        return None, None


class FaultMiddleware:
    """Applies `FaultInjector` decisions to the paths `relative_path` says are faultable."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, base_path: str) -> None:
        self.app = app
        self.injector = injector
        self.base_path = base_path

    def relative_path(self, path: str) -> str | None:
        if path == "/auth/token":
            return path
        if self.base_path and path.startswith(self.base_path + "/"):
            return path[len(self.base_path) :]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relative = self.relative_path(scope["path"]) if scope["type"] == "http" else None
        if relative is None:
            await self.app(scope, receive, send)
            return
        rule, error = self.injector.decide(scope["method"], relative)
        if rule is not None and rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule is not None and rule.hang_seconds and error is None:
            await _sleep_unless_disconnected(rule.hang_seconds, receive)
            error = CxoneError(504, "emulated hang", "GatewayTimeout")
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _sleep_unless_disconnected(seconds: float, receive: Receive) -> None:
    """Hang like a stuck upstream, but stop early once the client gave up.

    Without this a hung request would keep the server from shutting down until the sleep ended.
    """

    async def wait_for_disconnect() -> None:
        while True:
            message: Any = await receive()
            if message["type"] == "http.disconnect":
                return

    waiter = asyncio.ensure_future(wait_for_disconnect())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()
