"""Contacts, threads, channels, custom fields, attachments, one-time tokens (§3.6, §3.7, §2.6)."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from cxone_emulator.config import EmulatorConfig
from tests.support import loopback
from tests.support.box_receiver import CHANNEL_ID, INTEGRATION_ID, inbound_message
from tests.support.emulator import Emulator, running_emulator

MESSAGES = f"/channels/{CHANNEL_ID}/messages"


def _field(response: httpx.Response) -> str | None:
    field: str | None = response.json()["errors"][0].get("field")
    return field


def _channel(channel_id: str = "chat_new", **changes: Any) -> dict[str, Any]:
    return {
        "id": channel_id,
        "idOnExternalPlatform": "page-1",
        "channelIntegrationId": INTEGRATION_ID,
        "realExternalPlatformId": "custom",
        "name": "Support chat",
        "isPrivate": True,
        "hasTreeStructure": False,
        **changes,
    }


# -- contacts -------------------------------------------------------------------------------
def test_get_and_search_contacts(api: httpx.Client) -> None:
    a = api.post(MESSAGES, json=inbound_message("m1", "t1", "alice")).json()["consumerContact"]
    b = api.post(MESSAGES, json=inbound_message("m2", "t2", "bob")).json()["consumerContact"]
    api.put(f"/contacts/{b['id']}/status", json={"status": "open"})

    assert api.get(f"/contacts/{a['id']}").json() == a
    assert api.get("/contacts/999999").status_code == 404

    everything = api.get("/contacts").json()
    assert everything["hits"] == 2
    by_status = api.get("/contacts", params={"status[]": ["open", "pending"]}).json()
    assert [c["id"] for c in by_status["data"]] == [b["id"]]
    by_user = api.get("/contacts", params={"endUserIdOnExternalPlatform[]": "alice"}).json()
    assert [c["id"] for c in by_user["data"]] == [a["id"]]
    plain = api.get("/contacts", params={"channel": CHANNEL_ID, "status": "new"}).json()
    assert [c["id"] for c in plain["data"]] == [a["id"]]
    assert api.get("/contacts", params={"channel[]": "other"}).json() == {"hits": 0, "data": []}
    assert api.get("/contacts", params={"status[]": "nonsense"}).status_code == 400


def test_contact_status_and_abandon(api: httpx.Client) -> None:
    contact = api.post(MESSAGES, json=inbound_message()).json()["consumerContact"]
    resolved = api.put(f"/contacts/{contact['id']}/status", json={"status": "resolved"})
    assert resolved.json()["status"] == "resolved"
    bad = api.put(f"/contacts/{contact['id']}/status", json={"status": "finished"})
    assert bad.status_code == 400
    assert _field(bad) == "status"
    abandoned = api.post(f"/contacts/{contact['id']}/abandon", json={"type": "expired"})
    assert abandoned.json()["status"] == "closed"
    assert abandoned.json()["abandonType"] == "expired"
    assert api.post(f"/contacts/{contact['id']}/abandon", json={"type": "x"}).status_code == 400
    assert api.post("/contacts/404/abandon", json={"type": "abandon"}).status_code == 404


# -- threads --------------------------------------------------------------------------------
def test_threads_search_get_and_update(api: httpx.Client) -> None:
    created = api.post(
        MESSAGES, json=inbound_message(thread={"idOnExternalPlatform": "t1", "threadName": "Order"})
    ).json()
    expected = {
        "id": created["consumerContact"]["threadId"],
        "idOnExternalPlatform": "t1",
        "channelId": CHANNEL_ID,
        "canAddMoreMessages": True,
        "threadName": "Order",
    }
    found = api.get("/threads", params={"channelId": CHANNEL_ID, "idOnExternalPlatform": "t1"})
    assert found.json() == {"data": [expected]}
    assert api.get("/threads", params={"idOnExternalPlatform": "zz"}).json() == {"data": []}
    assert api.get(f"/channels/{CHANNEL_ID}/threads/t1").json() == expected
    assert api.get(f"/channels/{CHANNEL_ID}/threads/zz").status_code == 404
    updated = api.put(
        f"/channels/{CHANNEL_ID}/threads/t1", json={"canAddMoreMessages": False, "threadName": "X"}
    ).json()
    assert updated == {**expected, "canAddMoreMessages": False, "threadName": "X"}
    bad = api.put(f"/channels/{CHANNEL_ID}/threads/t1", json={"canAddMoreMessages": "no"})
    assert _field(bad) == "canAddMoreMessages"


# -- channels -------------------------------------------------------------------------------
def test_channel_create_update_list_get_delete(api: httpx.Client) -> None:
    created = api.post("/channels", json=_channel(hasOutboundFlow=True, ownerUserId=7))
    assert created.status_code == 200
    assert created.json()["hasOutboundFlow"] is True
    assert created.json()["isLiveChat"] is False
    updated = api.post("/channels", json=_channel(name="Renamed")).json()
    assert updated["name"] == "Renamed"
    ids = [c["id"] for c in api.get("/channels").json()["data"]]
    assert ids.count("chat_new") == 1
    assert CHANNEL_ID in ids
    assert api.get("/channels/chat_new").json()["name"] == "Renamed"
    assert api.delete("/channels/chat_new").status_code == 204
    assert api.get("/channels/chat_new").status_code == 404
    assert api.delete("/channels/chat_new").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"idOnExternalPlatform": None}, "idOnExternalPlatform"),
        ({"realExternalPlatformId": None}, "realExternalPlatformId"),
        ({"name": 5}, "name"),
        ({"isPrivate": "yes"}, "isPrivate"),
        ({"hasTreeStructure": None}, "hasTreeStructure"),
        ({"isLiveChat": "true"}, "isLiveChat"),
        ({"ownerUserId": "seven"}, "ownerUserId"),
    ],
)
def test_channel_validation_names_the_field(
    api: httpx.Client, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in _channel(**change).items() if v is not None}
    response = api.post("/channels", json=body)
    assert response.status_code == 400
    assert _field(response) == field


def test_channel_needs_a_registered_integration(api: httpx.Client) -> None:
    response = api.post("/channels", json=_channel(channelIntegrationId="ghost"))
    assert response.status_code == 404
    assert _field(response) == "channelIntegrationId"


# -- custom fields --------------------------------------------------------------------------
def test_custom_field_definitions_upsert(api: httpx.Client) -> None:
    path = "/customers/custom-field-definitions"
    created = api.put(path, json={"ident": "plan", "label": "Plan", "type": "text"}).json()
    assert created == {
        "ident": "plan",
        "label": "Plan",
        "type": "text",
        "isRequired": False,
        "isEditable": True,
    }
    api.put(
        path,
        json={"ident": "plan", "label": "Plan", "type": "list", "values": ["gold", "silver"]},
    ).raise_for_status()
    listed = api.get(path).json()["data"]
    assert len(listed) == 1
    assert listed[0]["values"] == ["gold", "silver"]
    missing_values = api.put(path, json={"ident": "x", "label": "X", "type": "list"})
    assert _field(missing_values) == "values"
    assert _field(api.put(path, json={"ident": "x", "label": "X", "type": "date"})) == "type"
    assert _field(api.put(path, json={"label": "X", "type": "text"})) == "ident"


# -- attachments ----------------------------------------------------------------------------
def test_temporary_attachment_round_trip(api: httpx.Client, emu: Emulator) -> None:
    content = b"\x89PNG fake image bytes"
    uploaded = api.post(
        "/attachments/temporary",
        json={"content": base64.b64encode(content).decode(), "mimeType": "image/png"},
    ).json()
    assert uploaded["url"] == f"{emu.url}/attachments/{uploaded['id']}"
    assert uploaded["expireAt"].endswith("Z")
    # Fetched without a token, as a platform or CXone would.
    with loopback.client() as anonymous:
        fetched = anonymous.get(uploaded["url"])
    assert fetched.status_code == 200
    assert fetched.content == content
    assert fetched.headers["content-type"] == "image/png"
    bad = api.post("/attachments/temporary", json={"content": "***", "mimeType": "text/plain"})
    assert bad.status_code == 400
    assert _field(bad) == "content"
    assert _field(api.post("/attachments/temporary", json={"content": "aGk="})) == "mimeType"


def test_attachment_is_gone_after_expiry() -> None:
    with (
        running_emulator(EmulatorConfig(attachment_ttl_seconds=0.2)) as emu,
        emu.api_client() as api,
    ):
        uploaded = api.post(
            "/attachments/temporary", json={"content": "aGk=", "mimeType": "text/plain"}
        ).json()
        assert emu.admin.get(uploaded["url"]).text == "hi"
        time.sleep(0.3)
        assert emu.admin.get(uploaded["url"]).status_code == 404


# -- one-time tokens ------------------------------------------------------------------------
def test_one_time_token_is_single_use_and_yields_a_bearer(emu: Emulator) -> None:
    minted = emu.admin.post("/emulator/one-time-tokens", json={"userId": 55}).json()
    assert minted["brandId"] == 1001
    assert minted["userId"] == 55
    body = {
        "brandId": minted["brandId"],
        "userId": minted["userId"],
        "token": minted["token"],
        "purpose": "channel-integration",
    }
    verified = emu.admin.post(f"{emu.api_url}/one-time-token/verification", json=body)
    assert verified.status_code == 200
    result = verified.json()
    assert result["brand"] == {
        "id": 1001,
        "tenantId": emu.config.tenant_id,
        "businessUnitId": 4600,
    }
    assert result["user"]["id"] == 55
    headers = {"Authorization": f"Bearer {result['accessToken']}"}
    assert emu.admin.get(f"{emu.api_url}/channels", headers=headers).status_code == 200

    again = emu.admin.post(f"{emu.api_url}/one-time-token/verification", json=body)
    assert again.status_code == 401


def test_one_time_token_checks_brand_user_and_purpose(emu: Emulator) -> None:
    minted = emu.admin.post("/emulator/one-time-tokens").json()
    body = {
        "brandId": 1001,
        "userId": minted["userId"],
        "token": minted["token"],
        "purpose": "channel-integration",
    }
    url = f"{emu.api_url}/one-time-token/verification"
    assert emu.admin.post(url, json={**body, "brandId": 1}).status_code == 401
    assert emu.admin.post(url, json={**body, "userId": 1}).status_code == 401
    wrong_purpose = emu.admin.post(url, json={**body, "purpose": "login"})
    assert wrong_purpose.status_code == 400
    assert _field(wrong_purpose) == "purpose"
    # The failed attempts did not use the token up.
    assert emu.admin.post(url, json=body).status_code == 200
