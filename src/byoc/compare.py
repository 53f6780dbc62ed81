"""Constant-time comparison of secrets that arrive as text.

`hmac.compare_digest` refuses `str` arguments with non-ASCII characters (a `TypeError`, which
would be a 500); headers are decoded as Latin-1 and paths as UTF-8, so a client controls that.
Comparing the UTF-8 bytes keeps the time constant and makes any such credential just wrong.
"""

from __future__ import annotations

import hmac


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def bearer_matches(authorization: str, expected: str) -> bool:
    """Whether an `Authorization` header value is `Bearer <expected>` (any case of `Bearer`)."""
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and same_secret(token.strip(), expected)
