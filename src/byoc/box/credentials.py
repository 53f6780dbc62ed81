"""Client credentials that CXone uses at the token endpoint, and the tokens it gets back.

Client secrets are 256-bit random strings, so one salted SHA-256 is enough to store them:
there is nothing to brute-force, and a slow hash would only cost every token request time.
Access tokens are signed JWTs, not stored: any instance with the signing key can verify one.
A client belongs to one tenant and its tokens say which; a revoked client's tokens (and those
of a client moved to another tenant) stop working at the next client check, against the
clients every instance holds in memory (`ActiveClients`: told of every change at once on
PostgreSQL, read again every few seconds in any case).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt

from byoc.bus import CLIENTS_CHANGED, LocalBus
from byoc.clock import Clock, SystemClock
from byoc.errors import Unauthenticated
from byoc.store.records import OAuthClient

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
    """The clients that may hold tokens right now, with their tenants and secret hashes, kept
    in memory: the token endpoint checks a secret, and every callback its token's client,
    without a database read.

    The whole set is read again when it is older than `ttl_seconds` (so an instance learns of
    a change nobody told it about within that bound), after it is told of a change
    (`invalidate`: the bus announces every change that `byoc.store.clients` makes, at once on
    PostgreSQL), and when a request names a client it does not hold or a secret that does not
    match (a client created, or a secret rotated, since it was read). Such a request waits for
    a read that started after it came in; one read runs at a time and serves every request
    waiting for it, so unknown client ids cannot pile up reads.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[dict[str, OAuthClient]]],
        ttl_seconds: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock: Clock = clock or SystemClock()
        self._clients: dict[str, OAuthClient] = {}
        self._loaded_at = float("-inf")
        self._invalidations = 0
        self._started = 0  # reads started, numbered from 1
        self._finished = 0  # the number of the last read that finished
        self._reading: asyncio.Future[None] | None = None

    async def contains(self, client: BoxClient) -> bool:
        """Whether the client is active and still belongs to the tenant its token names."""
        known = await self._get(client.client_id)
        return known is not None and known.tenant_id == client.tenant_id

    async def verify(self, client_id: str, secret: str, *, recheck: bool = True) -> str | None:
        """The tenant of the active client `client_id` if `secret` is its secret, else None.
        The secret is checked against the stored hash (`verify_secret`: one SHA-256, cheap
        enough for the event loop); a mismatch is checked again against a fresh read, unless
        not to `recheck` (a caller that is not worth a read)."""
        asked = self._started
        known = await self._get(client_id)
        if known is not None and not verify_secret(secret, known.secret_hash):
            if not recheck:
                return None
            if self._finished <= asked:  # no read since this request came in
                await self._read(after=asked)
            known = self._clients.get(client_id)
            if known is not None and not verify_secret(secret, known.secret_hash):
                known = None
        return known.tenant_id if known is not None else None

    def holds(self, client_id: str) -> bool:
        """Whether `client_id` is among the clients in memory now (nothing is read)."""
        return client_id in self._clients

    def invalidate(self) -> None:
        self._invalidations += 1
        self._loaded_at = float("-inf")

    async def _get(self, client_id: str) -> OAuthClient | None:
        stale = self._clock.monotonic() - self._loaded_at > self._ttl
        if stale or client_id not in self._clients:
            await self._read(after=self._started)
        return self._clients.get(client_id)

    async def _read(self, *, after: int) -> None:
        """Until a read numbered above `after` has finished: join the read under way if it is
        one, else wait for it and start the next."""
        while self._finished <= after:
            if self._reading is None or self._reading.done():
                self._started += 1
                self._reading = asyncio.ensure_future(self._read_now(self._started))
            # Shielded: a request that goes away does not cancel the read the others wait for.
            await asyncio.shield(self._reading)

    async def _read_now(self, number: int) -> None:
        invalidations = self._invalidations
        try:
            self._clients = await self._load()
        finally:
            self._finished = number
        if invalidations == self._invalidations:  # nothing announced while it ran
            self._loaded_at = self._clock.monotonic()


async def follow_changes(bus: LocalBus, clients: ActiveClients) -> None:
    """Until cancelled: drop the clients held in memory whenever the bus announces a change of
    them (or asks everyone to re-read after its connection was lost)."""
    async with bus.subscribe(CLIENTS_CHANGED) as subscription:
        while True:
            await subscription.get()
            clients.invalidate()
