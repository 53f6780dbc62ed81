"""Client credentials that CXone uses at the token endpoint, and the tokens it gets back.

Client secrets are 256-bit random strings, so one salted SHA-256 is enough to store them:
there is nothing to brute-force, and a slow hash would only cost every token request time.
Access tokens are signed, not stored: any instance with the signing key can verify one, and
a revoked client's tokens stop working at the next client check (cached for a few seconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from byoc.clock import Clock, SystemClock
from byoc.compare import same_secret
from byoc.errors import Unauthenticated

CLIENT_ID_PREFIX = "byoc_"
VERIFIED_CACHE_SIZE = 1024


def new_client_credentials() -> tuple[str, str]:
    return CLIENT_ID_PREFIX + secrets.token_hex(8), secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.sha256((salt + secret).encode()).hexdigest()
    return f"sha256${salt}${digest}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "sha256":
        return False
    candidate = hashlib.sha256((salt + secret).encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class TokenIssuer:
    """Issues and verifies `b1.<claims>.<signature>` bearer tokens."""

    def __init__(
        self, signing_key: str, ttl_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hashlib.sha256(("byoc-box-token:" + signing_key).encode()).digest()
        self._ttl = ttl_seconds
        self._clock = clock
        # CXone sends the same token with every callback until it expires: remember the ones
        # already verified (token -> client id, expiry) instead of re-checking the signature.
        self._verified: dict[str, tuple[str, int]] = {}

    def issue(self, client_id: str) -> IssuedToken:
        claims = {
            "sub": client_id,
            "exp": int(self._clock()) + self._ttl,
            "jti": secrets.token_hex(8),
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return IssuedToken(access_token=f"b1.{body}.{signature}", expires_in=self._ttl)

    def verify(self, token: str) -> str:
        """Return the client id the token was issued to, or raise `Unauthenticated`."""
        known = self._verified.get(token)
        if known is not None:
            if known[1] > self._clock():
                return known[0]
            del self._verified[token]
            raise Unauthenticated("bearer token has expired")
        client_id, expires = self._verify_signed(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (client_id, expires)
        return client_id

    def _verify_signed(self, token: str) -> tuple[str, int]:
        try:
            version, body, signature = token.split(".")
        except ValueError:
            raise Unauthenticated("malformed bearer token") from None
        expected = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if version != "b1" or not same_secret(signature, expected):
            raise Unauthenticated("bearer token signature is not valid")
        try:
            claims = json.loads(_unb64(body))
            client_id, expires = str(claims["sub"]), int(claims["exp"])
        except (ValueError, KeyError, TypeError):
            raise Unauthenticated("bearer token claims are not readable") from None
        if expires <= self._clock():
            raise Unauthenticated("bearer token has expired")
        return client_id, expires


class ActiveClients:
    """Which client ids may hold tokens right now, re-read from the store every few seconds."""

    def __init__(
        self,
        load: Callable[[], Awaitable[set[str]]],
        ttl_seconds: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock: Clock = clock or SystemClock()
        self._ids: set[str] = set()
        self._loaded_at = float("-inf")

    async def contains(self, client_id: str) -> bool:
        if self._clock.monotonic() - self._loaded_at > self._ttl or client_id not in self._ids:
            self._ids = await self._load()
            self._loaded_at = self._clock.monotonic()
        return client_id in self._ids

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")
