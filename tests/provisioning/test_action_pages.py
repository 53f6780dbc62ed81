"""The Action, Remove and Reconnect URL pages, end to end over loopback HTTP against the
emulator: one-time tokens minted by the emulator, forms posted as a browser posts them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from byoc.provisioning.form_tokens import FormClaims, FormTokens
from tests.support.action_pages import BACK_URL, Pages, channel_id_of, form_token, start_pages
from tests.support.cli import INTEGRATION_ID
from tests.support.emulator import Emulator
from tests.support.stack import SIGNING_KEY


@pytest.fixture
def pages(tmp_path: Path, emulator: Emulator) -> Iterator[Pages]:
    with start_pages(tmp_path, emulator, cxone_channel_integration_id=INTEGRATION_ID) as running:
        yield running


def test_add_channel_end_to_end(pages: Pages) -> None:
    page = pages.open_action()
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
    verifications = pages.emulator.requests("/one-time-token/verification")
    assert [v["status"] for v in verifications] == [200]
    assert verifications[0]["requestBody"]["purpose"] == "channel-integration"
    channel_id = channel_id_of(page)

    created = pages.http.post(
        "/integration/action",
        data={
            "form_token": form_token(page),
            "name": "Shop chat",
            "adapter": "webhook",
            "webhook_url": "https://platform.example.invalid/byoc",
        },
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"] == BACK_URL

    remote = pages.emulator_channels()[channel_id]
    assert remote["name"] == "Shop chat"
    assert remote["channelIntegrationId"] == INTEGRATION_ID
    assert remote["ownerUserId"] == 4242  # the admin who opened the page
    local = pages.local_channel(channel_id)
    assert local is not None
    assert local.name == "Shop chat"
    assert local.webhook_url == "https://platform.example.invalid/byoc"
    assert local.tenant_id == "default"

    # A second submit of the same form (a double click) creates nothing more.
    again = pages.http.post(
        "/integration/action",
        data={"form_token": form_token(page), "name": "Shop chat", "adapter": "webhook"},
    )
    assert again.status_code == 303
    assert len(pages.emulator.requests("/channels", method="POST")) == 1


def test_the_same_form_submitted_twice_at_once_creates_one_channel(pages: Pages) -> None:
    """Both submits pass the checks before either has created the DE channel (CXone is slow to
    answer the create): the second one's mapping then fails, and must not delete the DE channel
    that the first one's mapping names."""
    page = pages.open_action()
    channel_id = channel_id_of(page)
    slow = {"rules": [{"match": "POST /channels", "latencyMs": 1000}]}
    pages.emulator.admin.put("/emulator/faults", json=slow).raise_for_status()
    form = {
        "form_token": form_token(page),
        "name": "Shop chat",
        "adapter": "webhook",
        "webhook_url": "https://platform.example.invalid/byoc",
    }

    def submit() -> httpx.Response:
        with httpx.Client(base_url=pages.url, timeout=10) as client:
            return client.post("/integration/action", data=form)

    with ThreadPoolExecutor(2) as both:
        answers = list(both.map(lambda _: submit(), range(2)))
    pages.emulator.admin.delete("/emulator/faults").raise_for_status()
    assert [a.status_code for a in answers] == [303, 303], [a.text for a in answers]
    assert len(pages.emulator.requests("/channels", method="POST")) == 2  # both got that far
    assert pages.emulator.requests(f"/channels/{channel_id}", method="DELETE") == []
    assert channel_id in pages.emulator_channels()
    local = pages.local_channel(channel_id)
    assert local is not None
    assert local.name == "Shop chat"


def test_a_used_one_time_token_is_refused(pages: Pages) -> None:
    minted = pages.mint()
    params = {"userId": minted["userId"], "brandId": minted["brandId"], "token": minted["token"]}
    assert pages.http.get("/integration/action", params=params).status_code == 200
    reused = pages.http.get("/integration/action", params=params)
    assert reused.status_code == 401
    assert "already used or has expired" in reused.text
    assert "form_token" not in reused.text
    wrong_user = pages.http.get(
        "/integration/action", params={**pages.mint(), "userId": 1}
    )  # another user's token
    assert wrong_user.status_code == 401


def test_a_forged_or_altered_form_token_is_refused(pages: Pages) -> None:
    page = pages.open_action()
    genuine = form_token(page)
    forger = FormTokens("not-the-signing-key-" + "x" * 40)
    forged = forger.issue(
        FormClaims("default", 1001, 4242, INTEGRATION_ID, "chat_forged", BACK_URL)
    )
    version, body, signature = genuine.split(".")
    altered = f"{version}.{body[:-2]}AA.{signature}"
    non_ascii = (f"{version}.{body}.{signature[:-1]}\u00e9", "f1.abc.\u2603", "f1.\u00ff.x")
    for token in (forged, altered, "", "f1.x.y", *non_ascii):
        refused = pages.http.post(
            "/integration/action",
            data={"form_token": token, "name": "Evil", "webhook_url": "https://e.invalid/h"},
        )
        assert refused.status_code == 403, token
        assert "Form expired" in refused.text
    expired = FormTokens(SIGNING_KEY, ttl_seconds=-1).issue(
        FormClaims("default", 1001, 4242, INTEGRATION_ID, "chat_late", BACK_URL)
    )
    late = pages.http.post("/integration/action", data={"form_token": expired, "name": "Late"})
    assert late.status_code == 403
    assert pages.emulator.requests("/channels", method="POST") == []


def test_an_address_whose_links_keep_failing_is_refused_without_asking_cxone(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Each link check is a call to CXone on the middleware's credentials: made-up links from
    one address spend its budget, then are refused (429) without one; a good link was never
    counted."""
    with start_pages(
        tmp_path,
        emulator,
        cxone_channel_integration_id=INTEGRATION_ID,
        admin_link_failures_per_address="3/minute",
    ) as pages:
        assert pages.open_action().status_code == 200  # a good link: not counted
        served = pages.emulator.config.brand_id
        bad: dict[str, str | int] = {"brandId": served, "userId": 1, "token": "made-up"}
        assert pages.http.get("/integration/action", params=bad).status_code == 401
        unknown = {**bad, "brandId": served + 1}
        assert pages.http.get("/integration/action", params=unknown).status_code == 404
        assert (
            pages.http.get("/integration/remove", params={**bad, "channelId": "c"}).status_code
            == 401
        )
        asked = len(pages.emulator.requests("/one-time-token/verification"))
        for path in ("/integration/action", "/integration/remove", "/integration/reconnect"):
            refused = pages.http.get(path, params={**bad, "channelId": "c"})
            assert refused.status_code == 429, path
            assert "try again in" in refused.text
        assert len(pages.emulator.requests("/one-time-token/verification")) == asked


def test_unknown_brand_and_missing_parameters(pages: Pages) -> None:
    minted = pages.mint()
    unknown = pages.http.get(
        "/integration/action",
        params={"userId": minted["userId"], "brandId": 999999, "token": minted["token"]},
    )
    assert unknown.status_code == 404
    assert "serves no CXone brand 999999" in unknown.text
    assert pages.emulator.requests("/one-time-token/verification") == []
    missing = pages.http.get("/integration/action", params={"brandId": 1001})
    assert missing.status_code == 400


def test_apihost_is_never_called(pages: Pages) -> None:
    page = pages.open_action()
    assert page.status_code == 200
    # The token went to the tenant's configured API, the only host the request log covers.
    assert len(pages.emulator.requests("/one-time-token/verification")) == 1


def test_form_errors_are_shown_escaped_and_keep_the_input(pages: Pages) -> None:
    page = pages.open_action()
    token = form_token(page)
    bad = pages.http.post(
        "/integration/action",
        data={
            "form_token": token,
            "name": '<script>alert("x")</script>',
            "adapter": "webhook",
            "webhook_url": "javascript:alert(1)",
        },
    )
    assert bad.status_code == 422
    assert "<script>alert" not in bad.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in bad.text
    assert "must be an http or https URL" in bad.text
    assert pages.emulator.requests("/channels", method="POST") == []
    # The same form, corrected, still works.
    fixed = pages.http.post(
        "/integration/action",
        data={"form_token": token, "name": "Fixed", "adapter": "webchat",
              "allowed_origins": "https://shop.example  https://www.shop.example"},
    )  # fmt: skip
    assert fixed.status_code == 303
    local = pages.local_channel(channel_id_of(page))
    assert local is not None
    assert local.adapter == "webchat"
    assert local.settings == {
        "allowed_origins": ["https://shop.example", "https://www.shop.example"]
    }


def test_a_nul_in_a_form_field_is_refused_however_the_form_is_sent(pages: Pages) -> None:
    """PostgreSQL refuses NUL in text and SQLite stores it: refused before CXone is called,
    whether the form comes multipart (which the text guard leaves to the page: files hold NUL
    bytes) or urlencoded with a raw NUL byte."""
    page = pages.open_action()
    token = form_token(page)
    multipart = pages.http.post(
        "/integration/action",
        files={
            "form_token": (None, token),
            "name": (None, "Shop chat"),
            "adapter": (None, "webhook"),
            "webhook_url": (None, "https://platform.example.invalid/by\x00oc"),
        },
    )
    assert multipart.status_code == 422
    assert "contains control characters" in multipart.text
    origins = pages.http.post(
        "/integration/action",
        files={
            "form_token": (None, token),
            "name": (None, "Shop chat"),
            "adapter": (None, "webchat"),
            "allowed_origins": (None, "https://shop.example\x00x"),
        },
    )
    assert origins.status_code == 422, origins.text
    raw = pages.http.post(
        "/integration/action",
        content=(
            "form_token=" + token + "&name=Shop&adapter=webchat"
            "&allowed_origins=https://shop.example\x00x"
        ).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert raw.status_code == 422
    assert pages.emulator.requests("/channels", method="POST") == []
    assert pages.local_channel(channel_id_of(page)) is None


def test_cxone_refusal_is_shown_and_stores_nothing(pages: Pages) -> None:
    page = pages.open_action(channelIntegrationId="not-registered")
    assert "not-registered" in page.text
    refused = pages.http.post(
        "/integration/action",
        data={"form_token": form_token(page), "name": "X", "webhook_url": "https://p.invalid/h"},
    )
    assert refused.status_code == 502
    assert "CXone refused the channel" in refused.text
    assert pages.local_channel(channel_id_of(page)) is None
    assert pages.emulator_channels() == {}


@pytest.mark.parametrize("back_url", ["javascript:alert(document.domain)", ""])
def test_a_back_url_that_is_not_http_is_never_a_link(pages: Pages, back_url: str) -> None:
    page = pages.open_action(back_url=back_url)
    done = pages.http.post(
        "/integration/action",
        data={"form_token": form_token(page), "name": "Safe", "webhook_url": "https://p.invalid/h"},
    )
    assert done.status_code == 200
    assert "Channel created" in done.text
    assert "href" not in done.text
    assert "location" not in done.headers


def test_without_an_integration_id_the_token_is_not_spent(
    tmp_path: Path, emulator: Emulator
) -> None:
    with start_pages(tmp_path, emulator) as pages:
        params = _fresh(pages)
        page = pages.http.get("/integration/action", params=params)
        assert page.status_code == 400
        assert "BYOC_CXONE_CHANNEL_INTEGRATION_ID" in page.text
        assert emulator.requests("/one-time-token/verification") == []
        # The same link with the id in the Action URL works.
        ok = pages.http.get(
            "/integration/action", params={**params, "channelIntegrationId": INTEGRATION_ID}
        )
        assert ok.status_code == 200


def _create(pages: Pages) -> str:
    page = pages.open_action()
    created = pages.http.post(
        "/integration/action",
        data={
            "form_token": form_token(page),
            "name": "To go",
            "webhook_url": "https://p.invalid/h",
        },
    )
    assert created.status_code == 303
    return channel_id_of(page)


def test_remove_deletes_both_sides(pages: Pages) -> None:
    channel_id = _create(pages)
    minted = pages.mint()
    params = {
        "channelId": channel_id,
        "token": minted["token"],
        "brandId": minted["brandId"],
        "userId": minted["userId"],
        "backUrl": BACK_URL,
    }
    removed = pages.http.get("/integration/remove", params=params)
    assert removed.status_code == 303
    assert removed.headers["location"] == BACK_URL
    assert channel_id not in pages.emulator_channels()
    assert pages.local_channel(channel_id) is None
    # The one-time token is spent: the same link deletes nothing twice.
    assert pages.http.get("/integration/remove", params=params).status_code == 401
    unknown = pages.http.get(
        "/integration/remove", params={**params, **_fresh(pages), "channelId": channel_id}
    )
    assert unknown.status_code == 404


def test_remove_leaves_a_channel_not_mapped_here_alone(pages: Pages) -> None:
    """DE deletes whatever channel our access key may: another integration's too. The Remove
    URL's channel id is the link's, so only a channel mapped here is deleted."""
    foreign = {
        "id": "chat_foreign_main",
        "idOnExternalPlatform": "wa-1",
        "channelIntegrationId": INTEGRATION_ID,
        "realExternalPlatformId": "whatsapp",
        "name": "Not mapped here",
        "isPrivate": True,
        "hasTreeStructure": False,
    }
    with pages.emulator.api_client(timeout=10) as api:
        assert api.post("/channels", json=foreign).status_code in (200, 201)
    assert "chat_foreign_main" in pages.emulator_channels()
    refused = pages.http.get(
        "/integration/remove", params={**_fresh(pages), "channelId": "chat_foreign_main"}
    )
    assert refused.status_code == 404
    assert "chat_foreign_main" in pages.emulator_channels()


def _fresh(pages: Pages) -> dict[str, Any]:
    minted = pages.mint()
    return {"token": minted["token"], "brandId": minted["brandId"], "userId": minted["userId"]}


def test_remove_needs_a_valid_token(pages: Pages) -> None:
    channel_id = _create(pages)
    forged = pages.http.get(
        "/integration/remove",
        params={"channelId": channel_id, "token": "guess", "brandId": 1001, "userId": 4242},
    )
    assert forged.status_code == 401
    assert channel_id in pages.emulator_channels()
    assert pages.local_channel(channel_id) is not None


def test_reconnect_reverifies(pages: Pages) -> None:
    channel_id = _create(pages)
    ok = pages.http.get(
        "/integration/reconnect", params={"channelId": channel_id, "backUrl": BACK_URL,
                                           **_fresh(pages)}
    )  # fmt: skip
    assert ok.status_code == 303
    with pages.emulator.api_client() as api:
        api.delete(f"/channels/{channel_id}").raise_for_status()
    missing = pages.http.get(
        "/integration/reconnect", params={"channelId": channel_id, **_fresh(pages)}
    )
    assert missing.status_code == 409
    assert "no longer has channel" in missing.text
    unmapped = pages.http.get(
        "/integration/reconnect", params={"channelId": "chat_other", **_fresh(pages)}
    )
    assert unmapped.status_code == 404
    spent = pages.http.get(
        "/integration/reconnect", params={"channelId": channel_id, "token": "x", "brandId": 1001,
                                           "userId": 4242}
    )  # fmt: skip
    assert spent.status_code == 401


@pytest.mark.parametrize(
    "back_url",
    [
        "https://attacker.example.net/phish",
        "https://cxone.example.invalid.attacker.example.net/",  # a suffix is not a subdomain
        "https://evilcxone.example.invalid/",
        "https://user@attacker.example.net/",
        "https://[::1/x",  # unreadable
        "https://attacker.example\\@cxone.example.invalid/",  # a browser's host: attacker
        "https://attacker.example:443\\@eu.cxone.example.invalid/",
        "https://cxone.example.invalid\tattacker/",
        "https://cxone.example.invalid /attacker",
    ],
)
def test_a_back_url_on_a_host_not_allowed_is_not_followed(pages: Pages, back_url: str) -> None:
    """A verified link's `backUrl` is someone else's choice: the pages send the browser on only
    to a host of BYOC_ACTION_BACK_URL_HOSTS (here cxone.example.invalid and 127.0.0.1)."""
    page = pages.open_action(back_url=back_url)
    assert page.status_code == 200, page.text
    created = pages.http.post(
        "/integration/action",
        data={"form_token": form_token(page), "name": "Stay", "webhook_url": "https://p.invalid/h"},
    )
    assert created.status_code == 200, created.headers.get("location")
    assert "is ready" in created.text
    assert "attacker" not in created.text
    channel_id = channel_id_of(page)
    for path, params in (
        ("/integration/reconnect", {"channelId": channel_id}),
        ("/integration/remove", {"channelId": channel_id}),
    ):
        answer = pages.http.get(path, params={**params, **_fresh(pages), "backUrl": back_url})
        assert answer.status_code == 200, answer.headers.get("location")
        assert "attacker" not in answer.text
    # A subdomain of an allowed host is followed.
    allowed = "https://eu.cxone.example.invalid/admin"
    again = pages.http.get("/integration/reconnect", params={**_fresh(pages), "backUrl": allowed})
    assert again.status_code == 303
    assert again.headers["location"] == allowed


def test_back_url_hosts_must_be_host_names_with_their_domain(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from byoc.settings import Settings

    for bad in ("com", "https://cxone.example", "cxone.example/admin", "*.example.com"):
        with pytest.raises(ValidationError, match="no host name with its domain"):
            Settings(environment="development", action_back_url_hosts=bad)
    fine = Settings(environment="development", action_back_url_hosts=" A.example., 127.0.0.1,")
    assert fine.action_back_url_hosts == "a.example,127.0.0.1"  # as the pages compare them
