"""Failed attempts at the box token endpoint, throttled per client id and per client address.

Only failures count: CXone asking for a token with the right secret is never slowed down.
Once a client id's budget is spent, every attempt for it is refused (429 with `Retry-After`)
until the window moves on, right secret or not, so guessing a secret costs the window, not a
round trip. Once an address's budget is spent, its failures are refused the same way, but a
right secret from it for a client held in memory (`ActiveClients.holds`) is still answered:
many callers share an address (an ingress, a NAT, CXone's own egress), and made-up client ids
from one of them must not lock CXone out. A client id not held is refused from such an
address at once, before the client set is read again for it, so made-up ids cost no reads (a
client created since the last read waits for the window there, or for any other address's
request to bring it in). A secret is 256 random bits (`byoc.box.credentials`): being told
when a guess hit gains nothing.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from limits import RateLimitItem

from byoc.api.problems import problem
from byoc.ops.rate_limits import RateLimits, parse_limit
from byoc.settings import Settings


class TokenThrottle:
    def __init__(self, rate_limits: RateLimits, settings: Settings) -> None:
        self._rate_limits = rate_limits
        self._per_client = parse_limit(settings.token_failures_per_client)
        self._per_address = parse_limit(settings.token_failures_per_address)

    def client_wait(self, client_id: str) -> int | None:
        """Seconds before another attempt for this client id, or None if it may try now."""
        return self._wait(self._per_client, ("token-failures", "client", client_id))

    def address_wait(self, address: str) -> int | None:
        """Seconds before another failure from this address is answered, or None."""
        return self._wait(self._per_address, ("token-failures", "address", address))

    def _wait(self, limit: RateLimitItem, key: tuple[str, ...]) -> int | None:
        if self._rate_limits.allows(limit, *key):
            return None
        return self._rate_limits.retry_after(limit, *key)

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
