"""The signed form token of the Action URL page: CSRF protection and one channel per submit.

`f1.<claims>.<signature>`, an HMAC with a key derived from `BYOC_TOKEN_SIGNING_KEY` (separate
from the box tokens' key); it binds the tenant, the verified user, the channel integration,
`backUrl` and the id of the channel the form creates, and expires after 15 minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from byoc.compare import same_secret

FORM_TOKEN_TTL_SECONDS = 900


@dataclass(frozen=True)
class FormClaims:
    tenant_id: str
    brand_id: int
    user_id: int
    integration_id: str
    channel_id: str
    back_url: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FormTokens:
    """`f1.<claims>.<signature>`; the key is separate from the box tokens' key."""

    def __init__(self, signing_key: str, ttl_seconds: int = FORM_TOKEN_TTL_SECONDS) -> None:
        self._key = hashlib.sha256(("byoc-action-form:" + signing_key).encode()).digest()
        self._ttl = ttl_seconds

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, claims: FormClaims, *, now: float | None = None) -> str:
        payload = {
            "t": claims.tenant_id,
            "b": claims.brand_id,
            "u": claims.user_id,
            "i": claims.integration_id,
            "c": claims.channel_id,
            "k": claims.back_url,
            "exp": int(now if now is not None else time.time()) + self._ttl,
            "n": secrets.token_hex(8),
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"f1.{body}.{self._sign(body)}"

    def verify(self, token: str, *, now: float | None = None) -> FormClaims | None:
        """The claims of a genuine, unexpired token; None for anything else."""
        try:
            version, body, signature = token.split(".")
        except ValueError:
            return None
        if version != "f1" or not same_secret(signature, self._sign(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
            claims = FormClaims(
                tenant_id=str(payload["t"]),
                brand_id=int(payload["b"]),
                user_id=int(payload["u"]),
                integration_id=str(payload["i"]),
                channel_id=str(payload["c"]),
                back_url=str(payload["k"]),
            )
            expires = int(payload["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= (now if now is not None else time.time()):
            return None
        return claims
