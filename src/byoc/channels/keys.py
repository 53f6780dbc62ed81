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

Purpose = Literal["platform-request", "widget-identity"]

PLATFORM_REQUEST: Purpose = "platform-request"
WIDGET_IDENTITY: Purpose = "widget-identity"


@functools.lru_cache(maxsize=4096)
def derive_key(secret: str, purpose: Purpose) -> bytes:
    """The channel's key for `purpose` (cached: every signed request asks for one)."""
    return hmac.new(secret.encode(), f"byoc/{purpose}".encode(), hashlib.sha256).digest()
