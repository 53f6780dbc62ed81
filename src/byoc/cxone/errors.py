"""The one exception hierarchy of the CXone Digital Engagement client.

    CxoneError                  anything the DE API or its token endpoint did not do for us
     ├── CxoneUnavailable       transport error, timeout, 5xx or 429: retry later
     │                          (`retry_after` carries the server's Retry-After, in seconds)
     ├── CxoneRejected          any other 4xx: the request itself is wrong; dead-letter it
     │    ├── CxoneNotFound     404: the channel, contact, thread or message does not exist
     │    └── CxoneConflict     409: the request collides with DE's current state
     └── CxoneAuthError         the token endpoint refused our credentials, a call was
                                still answered 401 after one token refresh, or DE
                                refused a one-time token

`CxoneError` itself is raised for a success answer whose body we cannot read: neither a
retry nor a different request would help, so callers treat it like a rejection.

Every error carries the HTTP `status` (None when no answer arrived), CXone's error items
`errors` (`[{"field"?, "message", "errorCode"?}]`) and the request `uid` CXone gives for
support. Lower-level errors (`byoc.http`, pydantic) become these in one place: `byoc.cxone._wire`.
"""

from __future__ import annotations


class CxoneError(Exception):
    """Base of every error of the CXone client."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: list[dict[str, object]] | None = None,
        uid: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors: list[dict[str, object]] = list(errors or [])
        self.uid = uid


class CxoneUnavailable(CxoneError):
    """CXone could not be reached or asked us to come back later; the request may succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: list[dict[str, object]] | None = None,
        uid: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors, uid=uid)
        self.retry_after = retry_after


class CxoneRejected(CxoneError):
    """CXone refused the request as it stands; sending it again will not help."""


class CxoneNotFound(CxoneRejected):
    """404: the addressed resource does not exist in DE."""


class CxoneConflict(CxoneRejected):
    """409: the request conflicts with the resource's current state."""


class CxoneAuthError(CxoneError):
    """Our CXone credentials were refused, or a fresh token was refused too."""
