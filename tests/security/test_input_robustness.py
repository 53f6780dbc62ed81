"""Input robustness: no input yields a 5xx. Hostile bytes get a 4xx problem and store nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from byoc.channels.signing import signed_headers
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.problems import PROBLEM, assert_problem
from tests.support.stack import Stack, box_token, running_stack
from tests.support.waiting import wait_for

ADMIN_TOKEN = "admin-token-0123456789abcdef0123456789abcdef"
NON_ASCII = "caf\u00e9-\u00ff".encode("latin-1")


@pytest.fixture
def stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    with running_stack(tmp_path, emulator, admin_token=ADMIN_TOKEN) as running:
        yield running


# Anonymous uploads must come from a page the channel allows.
PAGE_ORIGIN = "https://shop.invalid"


@pytest.fixture
def web_stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    settings = {"allowed_origins": [PAGE_ORIGIN]}
    with running_stack(tmp_path, emulator, adapter="webchat", channel_settings=settings) as running:
        yield running


def raw_signed(stack: Stack, path: str, body: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json", **signed_headers(stack.channel_secret, body)}
    return loopback.post(stack.url + path, content=body, headers=headers, timeout=10)


def messages_path(stack: Stack) -> str:
    return f"/api/v1/channels/{stack.channel_id}/messages"


# --- non-ASCII bytes in credentials ----------------------------------------------------------


def test_non_ascii_bearer_token_is_401(stack: Stack) -> None:
    response = loopback.post(
        f"{stack.url}/integration/box/2.0/channel/{stack.channel_id}/outbound",
        content=b"{}",
        headers={b"Content-Type": b"application/json", b"Authorization": b"Bearer b1." + NON_ASCII},
    )
    assert_problem(response, 401, "unauthenticated")


def test_non_ascii_admin_token_is_401(stack: Stack) -> None:
    response = loopback.post(
        f"{stack.url}/admin/v1/channels/{stack.channel_id}/outbound",
        json={"customerId": "u1", "text": "hi"},
        headers={b"Authorization": b"Bearer " + NON_ASCII},
    )
    assert_problem(response, 401, "unauthenticated")


def test_non_ascii_platform_signature_is_401(stack: Stack) -> None:
    body = json.dumps({"customer": {"id": "u1"}, "text": "hi"}).encode()
    headers: dict[str, Any] = {
        "Content-Type": "application/json",
        **signed_headers(stack.channel_secret, body),
    }
    headers["X-Byoc-Signature"] = b"v1=" + NON_ASCII
    for path in (messages_path(stack), f"/api/v1/channels/{stack.channel_id}/typing"):
        response = loopback.post(stack.url + path, content=body, headers=headers)
        assert_problem(response, 401, "unauthenticated")


def upload(stack: Stack, headers: dict[str, Any]) -> httpx.Response:
    return loopback.post(
        f"{stack.url}/webchat/v1/channels/{stack.channel_id}/attachments",
        files={"file": ("a.png", b"\x89PNG\r\n\x1a\n" + b"0" * 32, "image/png")},
        headers=headers,
    )


def test_non_ascii_widget_identity_is_401(web_stack: Stack) -> None:
    response = upload(web_stack, {"X-Byoc-User": b"u1", "X-Byoc-User-Signature": NON_ASCII})
    assert_problem(response, 401, "unauthenticated")
    response = upload(web_stack, {"X-Byoc-User": NON_ASCII, "X-Byoc-User-Signature": b"00"})
    assert_problem(response, 401, "unauthenticated")


def attachment_link(stack: Stack, attachment_id: str, token: str) -> httpx.Response:
    return loopback.get(f"{stack.url}/webchat/v1/attachments/{attachment_id}/{token}")


# Not a token the service issues (32 characters of the URL-safe base64 alphabet): non-ASCII,
# another alphabet, another length.
MALFORMED_TOKENS = ["caf%C3%A9", "caf%C3%A9" + "a" * 28, "a" * 31 + "%2B", "a" * 31, "a" * 33]


def test_non_ascii_attachment_token_is_refused(web_stack: Stack) -> None:
    uploaded = upload(web_stack, {"X-Byoc-Visitor": "ab" * 16, "Origin": PAGE_ORIGIN})
    assert uploaded.status_code == 201, uploaded.text
    attachment_id = uploaded.json()["id"]
    # A malformed token is a bad credential, refused before the attachment is looked up: the
    # same 401 for an id that exists and one that does not, so nothing is learnt about ids.
    for token in MALFORMED_TOKENS:
        for target in (attachment_id, "att_doesnotexist"):
            response = attachment_link(web_stack, target, token)
            assert_problem(response, 401, "unauthenticated")
    # The right token still opens it.
    assert loopback.get(uploaded.json()["url"]).status_code == 200


def test_a_well_formed_wrong_attachment_token_is_404(web_stack: Stack) -> None:
    uploaded = upload(web_stack, {"X-Byoc-Visitor": "ab" * 16, "Origin": PAGE_ORIGIN})
    assert uploaded.status_code == 201, uploaded.text
    attachment_id = uploaded.json()["id"]
    wrong = "A" * 30 + "_-"
    # An attachment URL is a capability: a wrong one is "no such attachment", never a 5xx.
    assert_problem(attachment_link(web_stack, attachment_id, wrong), 404, "not-found")
    assert_problem(attachment_link(web_stack, "att_doesnotexist", wrong), 404, "not-found")


# --- bodies --------------------------------------------------------------------------------


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("route", ["messages", "typing", "receipts"])
def test_json_nested_100000_deep_is_400(stack: Stack, route: str) -> None:
    body = b'{"customer": {"id": "u1"}, "text": ' + deep(100_000) + b"}"
    response = raw_signed(stack, f"/api/v1/channels/{stack.channel_id}/{route}", body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


def test_deep_json_on_admin_and_box_is_400(stack: Stack) -> None:
    response = loopback.post(
        f"{stack.url}/admin/v1/channels/{stack.channel_id}/outbound",
        content=deep(100_000),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    response = loopback.post(
        f"{stack.url}/integration/box/1.0/token",
        content=deep(100_000),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "escaped",
    [r"\ud800", r"\udfff", r"a\ud83d", r"\ude00b"],
)
def test_lone_surrogate_is_422(stack: Stack, escaped: str) -> None:
    body = ('{"customer": {"id": "u1"}, "text": "' + escaped + '"}').encode()
    assert_problem(raw_signed(stack, messages_path(stack), body), 422, "invalid-input")
    body = ('{"customer": {"id": "' + escaped + '"}, "text": "hi"}').encode()
    assert_problem(raw_signed(stack, messages_path(stack), body), 422, "invalid-input")
    typing = ('{"threadId": "' + escaped + '", "typing": true}').encode()
    path = f"/api/v1/channels/{stack.channel_id}/typing"
    assert_problem(raw_signed(stack, path, typing), 422, "invalid-input")


def test_surrogate_pair_is_text(stack: Stack) -> None:
    body = b'{"customer": {"id": "u1"}, "text": "smile \\ud83d\\ude00"}'
    response = raw_signed(stack, messages_path(stack), body)
    assert response.status_code == 202, response.text


def test_empty_message_id_is_422_and_poisons_nothing(stack: Stack) -> None:
    empty = {"id": "", "customer": {"id": "u1"}, "text": "hi"}
    for _ in range(2):
        response = stack.signed("POST", messages_path(stack), empty)
        assert_problem(response, 422, "invalid-input")
    for n in range(3):
        response = stack.signed(
            "POST", messages_path(stack), {"id": f"m{n}", "customer": {"id": "u1"}, "text": "ok"}
        )
        assert response.status_code == 202, response.text


def nul_answers(stack: Stack) -> list[int]:
    statuses = []
    for payload in (
        {"customer": {"id": "u1"}, "text": "a\u0000b"},
        {"customer": {"id": "u\u0000"}, "text": "hi"},
        {"customer": {"id": "u1", "firstName": "A\u0000"}, "text": "hi"},
        {"id": "m\u0000", "customer": {"id": "u1"}, "text": "hi"},
        {"customer": {"id": "u1"}, "text": "hi", "threadId": "t\u0000"},
    ):
        response = stack.signed("POST", messages_path(stack), payload)
        assert_problem(response, 422, "invalid-input")
        statuses.append(response.status_code)
    return statuses


def test_nul_character_is_422_on_sqlite(stack: Stack) -> None:
    assert nul_answers(stack) == [422] * 5
    assert stack.outbox() == []


@pytest.mark.postgres
def test_nul_character_is_422_on_postgres(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    with running_stack(tmp_path, emulator, database_url=postgres_url) as stack:
        assert nul_answers(stack) == [422] * 5
        assert stack.outbox() == []


@pytest.mark.postgres
def test_concurrent_retries_of_one_id_on_postgres(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    with running_stack(tmp_path, emulator, database_url=postgres_url) as stack:
        for round_ in range(3):
            payload = {"id": f"retry-{round_}", "customer": {"id": "u1"}, "text": "once"}

            def send(_: int, payload: dict[str, Any] = payload) -> httpx.Response:
                response: httpx.Response = stack.signed("POST", messages_path(stack), payload)
                return response

            with ThreadPoolExecutor(max_workers=4) as pool:
                responses = list(pool.map(send, range(4)))
            assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
            assert len({r.json()["id"] for r in responses}) == 1
            assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True, True]


# --- the same answer on both databases: a NUL in a path the CORS layer reads, numbers out of
# --- range ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def web_stack_on(
    request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator
) -> Iterator[Stack]:
    """`web_stack`, on SQLite and on PostgreSQL."""
    store = {}
    if request.param == "postgresql":
        store["database_url"] = request.getfixturevalue("postgres_url")
    settings = {"allowed_origins": [PAGE_ORIGIN]}
    with running_stack(
        tmp_path, emulator, adapter="webchat", channel_settings=settings, **store
    ) as running:
        yield running


def test_a_nul_in_the_upload_paths_channel_is_422_with_or_without_an_origin(
    web_stack_on: Stack,
) -> None:
    url = f"{web_stack_on.url}/webchat/v1/channels/a%00b/attachments"
    for headers in ({"X-Byoc-Visitor": "ab" * 16}, {"Origin": PAGE_ORIGIN}):
        files = {"file": ("a.png", b"\x89PNG\r\n\x1a\n", "image/png")}
        assert_problem(loopback.post(url, files=files, headers=headers), 422, "invalid-input")


@pytest.mark.parametrize("after_seq", [10**20, 2**63, -2])
def test_a_transcript_after_a_seq_out_of_range_is_422(web_stack_on: Stack, after_seq: int) -> None:
    thread_id = web_stack_on.customer_says("hello")["threadId"]
    path = f"/api/v1/channels/{web_stack_on.channel_id}/threads/{thread_id}/messages"
    response = web_stack_on.signed("GET", f"{path}?after_seq={after_seq}")
    assert_problem(response, 422, "invalid-input")
    assert web_stack_on.signed("GET", f"{path}?after_seq={2**63 - 1}").json()["messages"] == []


@pytest.mark.parametrize("name", ["снимок.png", "写真.png", "café.png"])
def test_an_upload_named_in_any_script_can_be_downloaded(web_stack: Stack, name: str) -> None:
    uploaded = loopback.post(
        f"{web_stack.url}/webchat/v1/channels/{web_stack.channel_id}/attachments",
        files={"file": (name, b"\x89PNG\r\n\x1a\n", "image/png")},
        headers={"X-Byoc-Visitor": "ab" * 16, "Origin": PAGE_ORIGIN},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["friendlyName"] == name
    downloaded = loopback.get(uploaded.json()["url"])
    assert downloaded.status_code == 200, downloaded.text
    disposition = downloaded.headers["content-disposition"]
    assert disposition.isascii()
    assert f"filename*=UTF-8''{quote(name)}" in disposition


# --- numbers JSON cannot carry back --------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["NaN", "Infinity", "-Infinity", "1e400", "[1, -2.5E+999]", "1" + "0" * 400 + ".5"],
)
def test_a_number_no_json_reader_takes_back_is_422_and_reaches_nobody(
    stack: Stack, number: str
) -> None:
    """Python's parsers take them; a browser's `JSON.parse` refuses the whole frame holding one,
    and so does a strict platform: an agent's card carrying one would break the widget."""
    said = stack.customer_says("hello")
    thread = said["threadId"]
    stack.contact_for_thread(thread)
    card = json.dumps(
        {
            "thread": {"idOnExternalPlatform": thread},
            "messageContent": {
                "type": "ADAPTIVE_CARD",
                "payload": {
                    "type": "AdaptiveCard",
                    "body": [{"type": "TextBlock", "text": "Pay?"}],
                    "actions": [{"type": "Action.Submit", "title": "Pay", "data": {"amount": 0}}],
                },
            },
        }
    ).replace('"amount": 0', f'"amount": {number}')
    reply = loopback.post(
        f"{stack.url}/integration/box/2.0/channel/{stack.channel_id}/outbound",
        content=card.encode(),
        headers={"Authorization": f"Bearer {box_token(stack)}", "Content-Type": "application/json"},
    )
    assert_problem(reply, 422, "invalid-input")
    if number.lstrip("-") in ("NaN", "Infinity"):  # refused at the door, on every route
        assert "not finite" in reply.json()["detail"]
        customer = '{"customer": {"id": "u1", "firstName": NUMBER}, "text": "hi"}'
        refused = raw_signed(
            stack, messages_path(stack), customer.replace("NUMBER", number).encode()
        )
        assert_problem(refused, 422, "invalid-input")
        assert "not finite" in refused.json()["detail"]
    wait_for(lambda: not stack.outbox(), what="an empty outbox")
    assert stack.platform.of_type("message.created") == []
    quoted = json.dumps({"customer": {"id": "u1"}, "text": f"{number} is a word here"})
    assert raw_signed(stack, messages_path(stack), quoted.encode()).status_code == 202


def test_only_the_compare_module_calls_compare_digest() -> None:
    """`hmac.compare_digest` raises on a non-ASCII `str`: every credential a client sends goes
    through `byoc.compare.same_secret`. A digest the service computed on both sides may use it
    directly (`box.credentials`, hex on both sides)."""
    package = Path(__file__).resolve().parents[2] / "src" / "byoc"
    callers = sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "compare_digest(" in path.read_text(encoding="utf-8")
    )
    assert callers == ["box/credentials.py", "compare.py"]
