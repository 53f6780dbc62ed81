"""Failed attempts at the box token endpoint, throttled per client id and per client address.

Only failures count: CXone asking for a token with the right secret is never slowed down. Once
either budget is spent, every attempt for that client id or from that address is refused (429
with `Retry-After`) until the window moves on, right secret or not, so guessing a secret costs
the window, not a round trip.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from byoc.api.problems import problem
from byoc.ops.rate_limits import RateLimits, parse_limit
from byoc.settings import Settings


class TokenThrottle:
    def __init__(self, rate_limits: RateLimits, settings: Settings) -> None:
        self._rate_limits = rate_limits
        self._per_client = parse_limit(settings.token_failures_per_client)
        self._per_address = parse_limit(settings.token_failures_per_address)

    async def wait_seconds(self, client_id: str, address: str) -> int | None:
        """Seconds the caller must wait before another attempt, or None if it may try now."""
        waits = [
            self._rate_limits.retry_after(limit, *key)
            for limit, key in (
                (self._per_client, ("token-failures", "client", client_id)),
                (self._per_address, ("token-failures", "address", address)),
            )
            if not self._rate_limits.allows(limit, *key)
        ]
        return max(waits) if waits else None

    async def failed(self, client_id: str, address: str) -> None:
        self._rate_limits.hit(self._per_client, "token-failures", "client", client_id)
        self._rate_limits.hit(self._per_address, "token-failures", "address", address)


def too_many_attempts(wait_seconds: int) -> JSONResponse:
    return problem(
        429,
        "too-many-attempts",
        "Too many failed attempts",
        f"too many failed token requests; try again in {wait_seconds} s",
        headers={"Retry-After": str(wait_seconds), "Cache-Control": "no-store"},
    )
