"""Who is on the other end of a widget: an anonymous visitor or a user the host page vouches for.

Anonymous visitors are known by a 128-bit random id that only their browser holds. Verified
users are named by the host page together with HMAC-SHA256(channel secret, user id), which only
the platform's server can compute; so no one can claim another customer's identity.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from byoc.compare import same_secret
from byoc.errors import Forbidden, Unauthenticated
from byoc.store.records import Channel

VISITOR_ID = re.compile(r"^[0-9a-f]{32,64}$")


@dataclass(frozen=True)
class WidgetIdentity:
    external_id: str
    verified: bool


def user_signature(secret: str, user_id: str) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def resolve_identity(
    channel: Channel,
    *,
    visitor_id: str | None,
    user_id: str | None,
    signature: str | None,
    allow_anonymous: bool,
) -> WidgetIdentity:
    if user_id:
        if not signature or not same_secret(
            signature.lower(), user_signature(channel.secret, user_id)
        ):
            raise Unauthenticated("the user signature does not match this channel")
        return WidgetIdentity(external_id=f"user:{user_id}", verified=True)
    if not allow_anonymous:
        raise Forbidden("this channel accepts verified users only")
    if not visitor_id or not VISITOR_ID.match(visitor_id):
        raise Unauthenticated("visitorId must be 32 to 64 lowercase hex characters")
    return WidgetIdentity(external_id=f"anon:{visitor_id}", verified=False)
