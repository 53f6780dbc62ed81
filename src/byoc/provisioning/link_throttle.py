"""Failed links of the Action, Reconnect and Remove pages, throttled per client address.

Whoever opens one of these pages makes the middleware call CXone: the one-time token in the
link is verified with the tenant's DE API, on the middleware's credentials and within its API
budget. So failures count (a brand this deployment does not serve, a token CXone refused, a
token verified for another brand): once an address's failures spend the budget, its next
requests are refused (429) without a call to CXone until the window moves on. A link that
works is never counted: an admin who opens the page from CXone is not slowed down.
"""

from __future__ import annotations

from byoc.ops.rate_limits import RateLimits, parse_limit
from byoc.settings import Settings


class LinkThrottle:
    def __init__(self, rate_limits: RateLimits, settings: Settings) -> None:
        self._rate_limits = rate_limits
        self._per_address = parse_limit(settings.admin_link_failures_per_address)

    def wait(self, address: str) -> int | None:
        """Seconds before a link from this address is checked again, or None if now."""
        if self._rate_limits.allows(self._per_address, "link-failures", address):
            return None
        return self._rate_limits.retry_after(self._per_address, "link-failures", address)

    def failed(self, address: str) -> None:
        self._rate_limits.hit(self._per_address, "link-failures", address)
