"""Client credentials that CXone uses at the token endpoint, and the tokens it gets back.

Client secrets are 256-bit random strings, so one salted SHA-256 is enough to store them:
there is nothing to brute-force, and a slow hash would only cost every token request time.
Access tokens are signed JWTs, not stored: any instance with the signing key can verify one.
A client belongs to one tenant and its tokens say which; a revoked client's tokens (and those
of a client moved to another tenant) stop working at the next client check (cached for a few
seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt

from byoc.clock import Clock, SystemClock
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


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class BoxClient:
    """Who called a box endpoint: the OAuth client and the one tenant it belongs to."""

    client_id: str
    tenant_id: str


TOKEN_ALGORITHM = "HS256"
DEFAULT_ISSUER = "byoc"
DEFAULT_AUDIENCE = "byoc:integration-box"


class TokenIssuer:
    """Issues and verifies the box's bearer tokens: HS256 JWTs (RFC 7519) made by PyJWT.

    Claims: `iss` (this middleware), `aud` (its Integration Box), `sub` (the client id),
    `tenant` (the client's tenant), `iat`, `exp`, `jti`; the header's `kid` names the signing
    key by a fingerprint, so a token signed by any other key is refused before its signature
    is checked, and a key can later be rotated by accepting a second `kid`.
    """

    def __init__(
        self,
        signing_key: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
        *,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
    ) -> None:
        # Derived, so the operator's key signs nothing but box tokens.
        self._key = hashlib.sha256(("byoc-box-token:" + signing_key).encode()).digest()
        self._kid = hashlib.sha256(b"kid:" + self._key).hexdigest()[:16]
        self._ttl = ttl_seconds
        self._clock = clock
        self._issuer = issuer
        self._audience = audience
        # CXone sends the same token with every callback until it expires: remember the ones
        # already verified (token -> client, expiry) instead of re-checking the signature.
        self._verified: dict[str, tuple[BoxClient, int]] = {}

    @property
    def kid(self) -> str:
        return self._kid

    def issue(self, client_id: str, tenant_id: str) -> IssuedToken:
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": client_id,
            "tenant": tenant_id,
            "iat": now,
            "exp": now + self._ttl,
            "jti": secrets.token_hex(8),
        }
        token = jwt.encode(claims, self._key, algorithm=TOKEN_ALGORITHM, headers={"kid": self._kid})
        return IssuedToken(access_token=token, expires_in=self._ttl)

    def verify(self, token: str) -> BoxClient:
        """The client the token was issued to, or raise `Unauthenticated`."""
        known = self._verified.get(token)
        if known is not None:
            if known[1] > self._clock():
                return known[0]
            del self._verified[token]
            raise Unauthenticated("bearer token has expired")
        client, expires = self._verify_signed(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (client, expires)
        return client

    def _verify_signed(self, token: str) -> tuple[BoxClient, int]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed bearer token") from None
        if header.get("kid") != self._kid:
            raise Unauthenticated("bearer token was signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[TOKEN_ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                # PyJWT reads the wall clock; the issuer's own clock decides expiry (below).
                options={
                    "require": ["iss", "aud", "sub", "exp", "tenant"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"bearer token is not valid: {exc}") from None
        client_id, tenant_id, expires = claims["sub"], claims["tenant"], claims["exp"]
        if not (
            isinstance(client_id, str) and isinstance(tenant_id, str) and isinstance(expires, int)
        ):
            raise Unauthenticated("bearer token claims are not readable")
        if expires <= self._clock():
            raise Unauthenticated("bearer token has expired")
        return BoxClient(client_id=client_id, tenant_id=tenant_id), expires


class ActiveClients:
    """Which clients may hold tokens right now, and their tenants, re-read every few seconds."""

    def __init__(
        self,
        load: Callable[[], Awaitable[dict[str, str]]],
        ttl_seconds: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock: Clock = clock or SystemClock()
        self._tenants: dict[str, str] = {}
        self._loaded_at = float("-inf")

    async def contains(self, client: BoxClient) -> bool:
        """Whether the client is active and still belongs to the tenant its token names."""
        stale = self._clock.monotonic() - self._loaded_at > self._ttl
        if stale or client.client_id not in self._tenants:
            self._tenants = await self._load()
            self._loaded_at = self._clock.monotonic()
        return self._tenants.get(client.client_id) == client.tenant_id

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")
