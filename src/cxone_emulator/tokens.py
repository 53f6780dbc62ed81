"""Bearer tokens and one-time tokens the emulator hands out.

Tokens are random opaque strings whose expiry lives here; nothing can be decoded from them,
so a middleware that wrongly parses the access token fails against the emulator as well.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass


class TokenStore:
    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def issue(self, ttl_seconds: float) -> str:
        token = secrets.token_urlsafe(32)
        self._expiry[token] = time.time() + ttl_seconds
        self._forget_long_expired()
        return token

    def is_valid(self, token: str) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and expiry > time.time()

    def expire_all(self) -> int:
        """Mark every issued token expired (kept, so they answer 401 rather than vanish)."""
        now = time.time()
        for token in self._expiry:
            self._expiry[token] = now - 1
        return len(self._expiry)

    def _forget_long_expired(self) -> None:
        # Benchmarks mint many tokens; drop those expired for an hour so memory stays flat.
        if len(self._expiry) < 1000:
            return
        cutoff = time.time() - 3600
        for token in [t for t, expiry in self._expiry.items() if expiry < cutoff]:
            del self._expiry[token]


@dataclass
class OneTimeToken:
    token: str
    user_id: int
    expires_at: float
    used: bool = False


class OneTimeTokenStore:
    def __init__(self) -> None:
        self._tokens: dict[str, OneTimeToken] = {}

    def mint(self, user_id: int, ttl_seconds: float) -> OneTimeToken:
        ott = OneTimeToken(secrets.token_urlsafe(24), user_id, time.time() + ttl_seconds)
        self._tokens[ott.token] = ott
        return ott

    def redeem(self, token: str, user_id: int) -> bool:
        """Single use: the first valid redemption wins, every later one fails."""
        ott = self._tokens.get(token)
        if ott is None or ott.used or ott.user_id != user_id or ott.expires_at <= time.time():
            return False
        ott.used = True
        return True
