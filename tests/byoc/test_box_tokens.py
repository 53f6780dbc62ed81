"""Box bearer tokens: verified ones are remembered, but never past their expiry."""

from __future__ import annotations

import pytest

from byoc.box.credentials import BoxClient, TokenIssuer
from byoc.errors import Unauthenticated


def test_a_remembered_token_still_expires() -> None:
    now = [1_000.0]
    issuer = TokenIssuer("k" * 32, ttl_seconds=60, clock=lambda: now[0])
    token = issuer.issue("byoc_abc", "default").access_token
    client = BoxClient(client_id="byoc_abc", tenant_id="default")
    assert issuer.verify(token) == client
    assert issuer.verify(token) == client  # remembered
    now[0] += 61
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="expired"):
            issuer.verify(token)


def test_a_bad_signature_is_refused_every_time() -> None:
    issuer = TokenIssuer("k" * 32, ttl_seconds=60)
    good = issuer.issue("byoc_abc", "default").access_token
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            issuer.verify(forged)
    other = TokenIssuer("z" * 32, ttl_seconds=60)
    with pytest.raises(Unauthenticated):
        other.verify(good)  # a token remembered by one key is not trusted by another
