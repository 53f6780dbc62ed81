"""Who is on the other end of a widget: an anonymous visitor or a user the host page vouches for.

Anonymous visitors are known by a 128-bit random id that only their browser holds. Verified
users are named by the host page together with a signature that only the platform's server can
compute, so no one can claim another customer's identity:

    identity key = HMAC-SHA256(channel secret, "byoc/widget-identity")
    signature    = hex HMAC-SHA256(identity key, "<expires>:<user id>")

`expires` is the unix time (seconds) after which the signature is refused, or empty for a
signature that does not expire. It comes first and holds digits only, so no user id can make
the signed text of another user id with another expiry. The identity key is for this alone
(`byoc.channels.keys`): a signed user id is never a valid platform API request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from byoc.channels.keys import WIDGET_IDENTITY, derive_key
from byoc.compare import same_secret
from byoc.errors import Forbidden, Unauthenticated
from byoc.store.records import Channel

VISITOR_ID = re.compile(r"^[0-9a-f]{32,64}$")
EXPIRES = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class WidgetIdentity:
    external_id: str
    verified: bool


def user_signature(secret: str, user_id: str, expires: int | str | None = None) -> str:
    signed = f"{'' if expires is None else expires}:{user_id}"
    key = derive_key(secret, WIDGET_IDENTITY)
    return hmac.new(key, signed.encode(), hashlib.sha256).hexdigest()


def resolve_identity(
    channel: Channel,
    *,
    visitor_id: str | None,
    user_id: str | None,
    signature: str | None,
    allow_anonymous: bool,
    expires: str | None = None,
    now: float | None = None,
) -> WidgetIdentity:
    if user_id:
        if expires and not EXPIRES.match(expires):
            raise Unauthenticated("the user signature's expiry must be unix seconds")
        expected = user_signature(channel.secret, user_id, expires or None)
        if not signature or not same_secret(signature.lower(), expected):
            raise Unauthenticated("the user signature does not match this channel")
        if expires and int(expires) <= (time.time() if now is None else now):
            raise Unauthenticated("the user signature has expired: the host page must sign anew")
        return WidgetIdentity(external_id=f"user:{user_id}", verified=True)
    if not allow_anonymous:
        raise Forbidden("this channel accepts verified users only")
    if not visitor_id or not VISITOR_ID.match(visitor_id):
        raise Unauthenticated("visitorId must be 32 to 64 lowercase hex characters")
    return WidgetIdentity(external_id=f"anon:{visitor_id}", verified=False)
