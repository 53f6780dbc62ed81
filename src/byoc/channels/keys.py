"""One key per purpose, each derived from a channel's secret.

A channel has one secret, shown once when the channel is created. It signs nothing itself:
every use gets its own key,

    key(purpose) = HMAC-SHA256(channel secret, "byoc/" + purpose)

so a signature made for one purpose is worthless for another. Without this, a host page that
signs user ids for the widget would sign whatever a visitor calls themselves, and a user id of
the form `"<timestamp>.<body>"` would be a valid platform API request.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Literal

Purpose = Literal["platform-request", "widget-identity", "erasure-audit"]

PLATFORM_REQUEST: Purpose = "platform-request"
WIDGET_IDENTITY: Purpose = "widget-identity"
# Names an erased customer in the audit log without naming them (`customer_reference`).
ERASURE_AUDIT: Purpose = "erasure-audit"


@functools.lru_cache(maxsize=4096)
def derive_key(secret: str, purpose: Purpose) -> bytes:
    """The channel's key for `purpose` (cached: every signed request asks for one)."""
    return hmac.new(secret.encode(), f"byoc/{purpose}".encode(), hashlib.sha256).digest()


def customer_reference(secret: str, external_id: str) -> str:
    """How an audit line names a platform user of the channel: a keyed hash of their id
    (HMAC-SHA256 under the channel's erasure-audit key, 128 bits in hex). Whoever holds the
    channel secret can recompute it for an id (`byoc customers erase` prints it, also when
    there is nothing left to erase); without the secret it cannot be tested against guesses,
    and the same user on two channels gets two unrelated references."""
    key = derive_key(secret, ERASURE_AUDIT)
    data = external_id.encode("utf-8", "surrogatepass")
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]
