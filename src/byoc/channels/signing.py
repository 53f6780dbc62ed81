"""HMAC-SHA256 request signatures between the middleware and a platform, both directions.

    X-Byoc-Timestamp: <unix seconds>
    X-Byoc-Signature: v2=<hex HMAC-SHA256(request key, "<timestamp>." + raw body)>

The request key is the channel's key for platform requests (`byoc.channels.keys`):
HMAC-SHA256(channel secret, "byoc/platform-request"), never the secret itself. The timestamp is
inside the signed bytes, so a captured request cannot be replayed once it falls outside the
tolerance window; inside the window, a customer message without an `id` is recognised by its
signature (see `byoc.channels.platform_api`).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from byoc.channels.keys import PLATFORM_REQUEST, derive_key
from byoc.compare import same_secret
from byoc.errors import Unauthenticated

TIMESTAMP_HEADER = "X-Byoc-Timestamp"
SIGNATURE_HEADER = "X-Byoc-Signature"
VERSION = "v2"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    key = derive_key(secret, PLATFORM_REQUEST)
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: str,
    timestamp: str | None,
    given: str | None,
    body: bytes,
    *,
    tolerance_seconds: int,
    now: float | None = None,
) -> str:
    """Check a request's signature; returns the matching signature (it names the request)."""
    if not timestamp or not given:
        raise Unauthenticated(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Unauthenticated(f"{TIMESTAMP_HEADER} must be unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        raise Unauthenticated("request timestamp is outside the allowed window")
    expected = signature(secret, timestamp, body)
    # Several comma-separated signatures are allowed, so a secret can be rotated.
    candidates = [s.strip() for s in given.split(",")]
    if any(same_secret(s, expected) for s in candidates):
        return expected
    if all(s.startswith("v1=") for s in candidates):
        raise Unauthenticated(
            "v1 signatures (keyed with the channel secret itself) are no longer accepted: "
            "sign with the channel's platform-request key as v2 (see the README)"
        )
    raise Unauthenticated("request signature does not match")
