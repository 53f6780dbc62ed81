"""Keys per purpose: a widget identity signature is never a platform API signature, and back.

Also: identity signatures may expire; a replayed platform request without an `id` stores
nothing twice; box tokens are JWTs whose issuer, audience, key id and expiry are all checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from byoc.channels.keys import PLATFORM_REQUEST, derive_key
from byoc.channels.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    request_target,
    signed_headers,
)
from byoc.channels.webchat.identity import user_signature
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.stack import SIGNING_KEY, Stack, box_token, running_stack
from tests.support.webchat import Webchat
from tests.support.widget import widget


@pytest.fixture
def stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    with running_stack(tmp_path, emulator) as running:
        yield running


def a_thread(stack: Stack) -> str:
    thread: str = stack.customer_says("hello", customer="u-1")["threadId"]
    return thread


def test_a_signed_user_id_is_not_a_platform_request(stack: Stack) -> None:
    """A host page signs whatever its users are called; one called "<ts>." must not hand out
    the signature of an empty-bodied platform request (reading a transcript)."""
    thread = a_thread(stack)
    path = f"/api/v1/channels/{stack.channel_id}/threads/{thread}/messages"
    timestamp = str(int(time.time()))
    # What a host page's signer returns for that user id, old style and as documented now.
    raw = hmac.new(
        stack.channel_secret.encode(), f"{timestamp}.".encode(), hashlib.sha256
    ).hexdigest()
    current = user_signature(stack.channel_secret, f"{timestamp}.")
    for signed in (raw, current):
        for version in ("v1", "v2"):
            response = loopback.get(
                stack.url + path,
                headers={TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: f"{version}={signed}"},
            )
            assert response.status_code == 401, response.text
    # The platform's own signature reads it.
    own = signed_headers(stack.channel_secret, b"", target=request_target("GET", path))
    response = loopback.get(stack.url + path, headers=own)
    assert response.status_code == 200, response.text


async def test_a_platform_signature_is_not_a_widget_identity(webchat: Webchat) -> None:
    timestamp = str(int(time.time()))
    platform = signed_headers(webchat.channel_secret, b"", now=int(timestamp))
    forged = platform[SIGNATURE_HEADER].split("=", 1)[1]
    raw = hmac.new(
        webchat.channel_secret.encode(), f"{timestamp}.".encode(), hashlib.sha256
    ).hexdigest()
    for signature in (forged, raw):
        async with widget(
            webchat, visitorId=None, userId=f"{timestamp}.", signature=signature
        ) as w:
            assert w.welcome["type"] == "error", w.welcome
            assert w.welcome["code"] == "unauthenticated"


async def test_identity_signatures_expire(webchat: Webchat) -> None:
    later, earlier = int(time.time()) + 600, int(time.time()) - 1
    good = user_signature(webchat.channel_secret, "u-7", later)
    async with widget(
        webchat, visitorId=None, userId="u-7", signature=good, userExpires=str(later)
    ) as w:
        assert w.welcome["type"] == "welcome", w.welcome
    expired = user_signature(webchat.channel_secret, "u-7", earlier)
    async with widget(
        webchat, visitorId=None, userId="u-7", signature=expired, userExpires=str(earlier)
    ) as w:
        assert w.welcome["code"] == "unauthenticated"
        assert "expired" in w.welcome["detail"]
    # Leaving the expiry out (or moving it) does not make an expiring signature last forever.
    for expires in (None, str(later)):
        hello = {"userExpires": expires} if expires else {}
        async with widget(webchat, visitorId=None, userId="u-7", signature=expired, **hello) as w:
            assert w.welcome["code"] == "unauthenticated"
    # The upload endpoint reads the same three values, from headers.
    response = loopback.post(
        f"{webchat.url}/webchat/v1/channels/{webchat.channel_id}/attachments",
        files={"file": ("a.txt", b"hi", "text/plain")},
        headers={
            "Origin": webchat.page_origin,
            "X-Byoc-User": "u-7",
            "X-Byoc-User-Signature": expired,
            "X-Byoc-User-Expires": str(earlier),
        },
    )
    assert response.status_code == 401, response.text


def test_a_replayed_message_without_id_is_stored_once(stack: Stack) -> None:
    body = json.dumps({"customer": {"id": "u-9"}, "text": "pay 10 EUR to 42"}).encode()
    headers = {"Content-Type": "application/json", **signed_headers(stack.channel_secret, body)}
    url = f"{stack.url}/api/v1/channels/{stack.channel_id}/messages"
    first = loopback.post(url, content=body, headers=headers)
    replay = loopback.post(url, content=body, headers=headers)
    assert first.status_code == replay.status_code == 202, replay.text
    assert not first.json()["duplicate"]
    assert replay.json()["duplicate"]
    assert replay.json()["id"] == first.json()["id"]
    thread = first.json()["threadId"]
    path = f"/api/v1/channels/{stack.channel_id}/threads/{thread}/messages"
    transcript = stack.signed("GET", path)
    assert [m["text"] for m in transcript.json()["messages"]] == ["pay 10 EUR to 42"]
    # The same text sent again in a new request is a new message.
    time.sleep(1.1)
    again = loopback.post(
        url,
        content=body,
        headers={"Content-Type": "application/json", **signed_headers(stack.channel_secret, body)},
    )
    assert again.status_code == 202
    assert not again.json()["duplicate"]


def test_the_request_key_is_derived_from_the_channel_secret(stack: Stack) -> None:
    """What the README tells a platform to compute, written out by hand."""
    body = json.dumps({"customer": {"id": "u-3"}, "text": "by hand"}).encode()
    timestamp = str(int(time.time()))
    key = hmac.new(stack.channel_secret.encode(), b"byoc/platform-request", hashlib.sha256)
    assert key.digest() == derive_key(stack.channel_secret, PLATFORM_REQUEST)
    mac = hmac.new(key.digest(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    response = loopback.post(
        f"{stack.url}/api/v1/channels/{stack.channel_id}/messages",
        content=body,
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: f"v2={mac}",
        },
    )
    assert response.status_code == 202, response.text


def test_box_tokens_are_checked_for_issuer_audience_key_and_expiry(stack: Stack) -> None:
    good = box_token(stack)
    header = jwt.get_unverified_header(good)
    claims = jwt.decode(good, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert claims["iss"] == stack.settings.public_url
    assert claims["aud"] == stack.settings.public_url + "/integration/box"
    key = hashlib.sha256(("byoc-box-token:" + SIGNING_KEY).encode()).digest()
    url = f"{stack.url}/integration/box/1.0/channel/{stack.channel_id}/recipients/validation"

    def status(token: str) -> int:
        return loopback.post(
            url,
            json={"endUserRecipients": [{"idOnExternalPlatform": "nobody"}]},
            headers={"Authorization": f"Bearer {token}"},
        ).status_code

    assert status(good) == 400  # authenticated; the recipient is unknown
    variants = [
        ({**claims, "iss": "https://elsewhere.example"}, header),
        ({**claims, "aud": "https://elsewhere.example/integration/box"}, header),
        ({**claims, "exp": int(time.time()) - 1}, header),
        ({k: v for k, v in claims.items() if k != "tenant"}, header),
        (claims, {**header, "kid": "another-key"}),
    ]
    for forged_claims, forged_header in variants:
        forged = jwt.encode(forged_claims, key, algorithm="HS256", headers=forged_header)
        assert status(forged) == 401, (forged_claims, forged_header)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]})
    assert status(unsigned) == 401


def test_a_captured_request_cannot_be_aimed_at_another_thread_or_customer(stack: Stack) -> None:
    """A request whose path names what it acts on is signed over its method, path and query
    (v3): its headers, captured, open nothing else; a body-only (v2) signature is refused
    there, with the reason, and still taken where the body names the target (a POST)."""
    alice = stack.customer_says("alice's secret", customer="alice")["threadId"]
    bob = stack.customer_says("bob's secret", customer="bob")["threadId"]
    base = f"/api/v1/channels/{stack.channel_id}"

    def transcript(thread: str, headers: dict[str, str]) -> httpx.Response:
        return loopback.get(f"{stack.url}{base}/threads/{thread}/messages", headers=headers)

    alices = signed_headers(
        stack.channel_secret, b"", target=request_target("GET", f"{base}/threads/{alice}/messages")
    )
    assert transcript(alice, alices).status_code == 200
    assert transcript(bob, alices).status_code == 401  # the same headers, re-aimed
    paged = f"{base}/threads/{alice}/messages?after_seq=0"
    assert loopback.get(stack.url + paged, headers=alices).status_code == 401  # another query
    body_only = transcript(bob, signed_headers(stack.channel_secret, b""))
    assert body_only.status_code == 401
    assert "sign it as v3" in body_only.json()["detail"]

    opt_out = json.dumps({"optedOut": True}).encode()
    alices_opt_out = request_target("PUT", f"{base}/customers/alice/opt-out")
    headers = {
        "Content-Type": "application/json",
        **signed_headers(stack.channel_secret, opt_out, target=alices_opt_out),
    }
    with loopback.client(base_url=stack.url, timeout=10) as http:
        bobs = http.put(f"{base}/customers/bob/opt-out", content=opt_out, headers=headers)
        assert bobs.status_code == 401
        done = http.put(f"{base}/customers/alice/opt-out", content=opt_out, headers=headers)
        assert done.status_code == 200, done.text


def test_a_platform_moving_to_v3_can_keep_v2_everywhere_for_a_while(
    tmp_path: Path, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """`BYOC_SIGNATURE_V2_EVERYWHERE`: a body-only signature is taken on a transcript read too,
    and each such use is logged, naming the channel and the request."""
    with running_stack(tmp_path, emulator, signature_v2_everywhere=True) as stack:
        thread = stack.customer_says("hello")["threadId"]
        path = f"/api/v1/channels/{stack.channel_id}/threads/{thread}/messages"
        with caplog.at_level(logging.WARNING, logger="byoc.channels.platform_api"):
            answer = loopback.get(
                stack.url + path, headers=signed_headers(stack.channel_secret, b"")
            )
        assert answer.status_code == 200, answer.text
        warned = [r.getMessage() for r in caplog.records if "sign it as v3" in r.getMessage()]
        assert warned == [
            f"channel {stack.channel_id} signed GET {path} body-only (v2): sign it as v3"
            " before BYOC_SIGNATURE_V2_EVERYWHERE is turned off"
        ]
