"""HMAC-SHA256 request signatures between the middleware and a platform, both directions.

    X-Byoc-Timestamp: <unix seconds>
    X-Byoc-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The timestamp is inside the signed bytes, so a captured request cannot be replayed once it
falls outside the tolerance window.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from byoc.compare import same_secret
from byoc.errors import Unauthenticated

TIMESTAMP_HEADER = "X-Byoc-Timestamp"
SIGNATURE_HEADER = "X-Byoc-Signature"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


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
) -> None:
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
    if not any(same_secret(s.strip(), expected) for s in given.split(",")):
        raise Unauthenticated("request signature does not match")
