"""The Integration Box at its edges: token requests without a `Content-Type`."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.byoc.harness import Stack

# --- the token endpoint decides by the body --------------------------------------------------


def token_url(stack: Stack) -> str:
    return stack.url + "/integration/box/1.0/token"


def test_a_json_token_request_without_content_type_gets_a_token(stack: Stack) -> None:
    body = json.dumps(
        {
            "client_id": stack.client_id,
            "client_secret": stack.client_secret,
            "grant_type": "client_credentials",
        }
    ).encode()
    bare = httpx.post(token_url(stack), content=body)
    assert "content-type" not in bare.request.headers
    # Some clients label every POST a form: the JSON object in it is still read as JSON.
    mislabelled = httpx.post(
        token_url(stack),
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    for response in (bare, mislabelled):
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "Bearer"


def test_a_form_token_request_still_gets_rfc6749_errors(stack: Stack) -> None:
    creds = {"client_id": stack.client_id, "client_secret": stack.client_secret}
    wrong_grant = httpx.post(token_url(stack), data={**creds, "grant_type": "password"})
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    # A form body sent without its header is still read as a form.
    no_header = httpx.post(
        token_url(stack),
        content=f"client_id={stack.client_id}&client_secret=wrong&grant_type=client_credentials",
    )
    assert no_header.status_code == 401
    assert no_header.json()["error"] == "invalid_client"


@pytest.mark.parametrize("body", [b'{"grant_type": ', b"[1, 2]", b'"client_credentials"'])
def test_a_json_body_that_is_not_an_object_is_invalid_request(stack: Stack, body: bytes) -> None:
    for headers in ({}, {"Content-Type": "application/json"}):
        response = httpx.post(token_url(stack), content=body, headers=headers)
        if body.startswith(b'"') and not headers:
            # Without the header a bare string is form text: no grant_type in it.
            assert response.json()["error"] == "unsupported_grant_type"
        else:
            assert response.json()["error"] == "invalid_request", (body, headers)
        assert response.status_code == 400
