"""HMAC-SHA256 request signatures between the middleware and a platform, both directions.

    X-Byoc-Timestamp: <unix seconds>
    X-Byoc-Signature: v3=<hex HMAC-SHA256(request key,
                           "<timestamp>." + "<METHOD> <path>[?<query>]" + "." + raw body)>
                   or v2=<hex HMAC-SHA256(request key, "<timestamp>." + raw body)>

The request key is the channel's key for platform requests (`byoc.channels.keys`):
HMAC-SHA256(channel secret, "byoc/platform-request"), never the secret itself. The timestamp is
inside the signed bytes, so a captured request cannot be replayed once it falls outside the
tolerance window; inside the window, a customer message without an `id` is recognised by its
signature (see `byoc.channels.platform_api`).

A v3 signature also covers the method, the path and the query string as sent, so a captured
request cannot be aimed at another thread or customer. A v2 signature covers the body alone:
it is accepted where the body names everything the request acts on (the platform API's POSTs,
whose bodies carry the thread, message or customer), and refused where the path does (reading
a transcript, opting a customer out). The middleware's webhooks are signed v2: one URL each,
the event in the body.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from byoc.channels.keys import PLATFORM_REQUEST, derive_key
from byoc.compare import same_secret
from byoc.errors import Unauthenticated

TIMESTAMP_HEADER = "X-Byoc-Timestamp"
SIGNATURE_HEADER = "X-Byoc-Signature"
VERSION = "v2"
TARGETED_VERSION = "v3"


def request_target(method: str, path: str, query: str = "") -> str:
    """What a v3 signature covers beside the body: `"GET /api/v1/…/messages?after_seq=3"`,
    the path percent-encoded and the query string exactly as sent."""
    return f"{method.upper()} {path}" + (f"?{query}" if query else "")


def signature(secret: str, timestamp: str, body: bytes, target: str | None = None) -> str:
    """The v3 signature of a request to `target` (`request_target`), or the v2 one (None)."""
    key = derive_key(secret, PLATFORM_REQUEST)
    if target is None:
        version, signed = VERSION, timestamp.encode() + b"." + body
    else:
        version, signed = TARGETED_VERSION, f"{timestamp}.{target}.".encode() + body
    return f"{version}={hmac.new(key, signed, hashlib.sha256).hexdigest()}"


def signed_headers(
    secret: str, body: bytes, *, now: float | None = None, target: str | None = None
) -> dict[str, str]:
    """The headers of a request signed v3 (to `target`), or v2 (its body alone)."""
    timestamp = str(int(time.time() if now is None else now))
    signed = signature(secret, timestamp, body, target)
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signed}


def verify_webhook(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_seconds: int
) -> str:
    """Check a webhook the middleware sent, as a platform does: signed v2, its body alone (one
    URL, the event in the body)."""
    timestamp, given = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    return verify(
        secret, timestamp, given, body, target=None, body_names_target=True,
        tolerance_seconds=tolerance_seconds,
    )  # fmt: skip


def verify(
    secret: str,
    timestamp: str | None,
    given: str | None,
    body: bytes,
    *,
    target: str | None,
    body_names_target: bool,
    tolerance_seconds: int,
    now: float | None = None,
) -> str:
    """Check a request to `target` (`request_target`; None: v2 only): its v3 signature, or
    its v2 one where `body_names_target`; returns the matching signature (it names the
    request). Only the versions the request offers are computed (a hot route's cost)."""
    if not timestamp or not given:
        raise Unauthenticated(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Unauthenticated(f"{TIMESTAMP_HEADER} must be unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        raise Unauthenticated("request timestamp is outside the allowed window")
    # Several comma-separated signatures are allowed, so a secret can be rotated.
    candidates = [s.strip() for s in given.split(",")]
    offered = {s.partition("=")[0] for s in candidates}
    targets: list[str | None] = []
    if target is not None and TARGETED_VERSION in offered:
        targets.append(target)
    if VERSION in offered:
        targets.append(None)  # v2
    for expected in (signature(secret, timestamp, body, t) for t in targets):
        if any(same_secret(s, expected) for s in candidates):
            if expected.startswith(VERSION + "=") and not body_names_target:
                raise Unauthenticated(
                    "a v2 signature covers the body alone, and this request's path names what "
                    "it acts on: sign it as v3 (method, path and query too; see the README)"
                )
            return expected
    if all(s.startswith("v1=") for s in candidates):
        raise Unauthenticated(
            "v1 signatures (keyed with the channel secret itself) are no longer accepted: "
            "sign with the channel's platform-request key as v3 (see the README)"
        )
    raise Unauthenticated("request signature does not match")
