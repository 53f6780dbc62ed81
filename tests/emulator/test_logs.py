"""Request and callback logs, and the agent API's housekeeping endpoints."""

from __future__ import annotations

import httpx

from tests.support.box_receiver import CHANNEL_ID, INTEGRATION_ID, inbound_message
from tests.support.emulator import Emulator


def test_request_log_records_de_and_auth_calls_with_redaction(
    emu: Emulator, api: httpx.Client
) -> None:
    api.post(f"/channels/{CHANNEL_ID}/messages", json=inbound_message())
    api.get("/contacts", params={"status[]": "new"})
    emu.admin.get("/emulator/contacts")  # the agent API is not recorded
    emu.admin.get("/console")

    entries = emu.requests()
    assert [(e["method"], e["path"]) for e in entries] == [
        ("POST", "/auth/token"),
        ("POST", f"/dfo/3.0/channels/{CHANNEL_ID}/messages"),
        ("GET", "/dfo/3.0/contacts"),
    ]
    token_call, create, search = entries
    assert token_call["headers"]["authorization"] == "<redacted>"
    assert create["headers"]["authorization"] == "<redacted>"
    assert create["status"] == 200
    assert create["requestBody"]["thread"] == {"idOnExternalPlatform": "thread-1"}
    assert create["responseBody"]["message"]["idOnExternalPlatform"] == "msg-1"
    assert search["query"] == "status%5B%5D=new"
    assert entries[0]["seq"] < entries[1]["seq"] < entries[2]["seq"]
    assert emu.requests(path_contains="/contacts") == [search]
    assert emu.requests(method="post") == [token_call, create]


def test_non_json_bodies_are_logged_as_text(emu: Emulator, api: httpx.Client) -> None:
    api.post(f"/channels/{CHANNEL_ID}/messages", content=b"plain words")
    assert emu.requests(path_contains="/messages")[0]["requestBody"] == "plain words"


def test_logs_can_be_cleared(emu: Emulator, api: httpx.Client) -> None:
    contact = api.post(f"/channels/{CHANNEL_ID}/messages", json=inbound_message()).json()
    emu.admin.post(
        f"/emulator/contacts/{contact['consumerContact']['id']}/reply", json={"text": "x"}
    )
    assert emu.requests()
    assert emu.callbacks()
    assert emu.admin.delete("/emulator/requests").status_code == 204
    assert emu.admin.delete("/emulator/callbacks").status_code == 204
    assert emu.requests() == []
    assert emu.callbacks() == []


def test_reset_keeps_channels_and_integrations(emu: Emulator, api: httpx.Client) -> None:
    api.post(f"/channels/{CHANNEL_ID}/messages", json=inbound_message())
    emu.admin.put("/emulator/faults", json={"rules": [{"match": "GET /nothing", "errorRate": 1}]})
    assert emu.admin.post("/emulator/reset").status_code == 200
    assert emu.admin.get("/emulator/contacts").json() == {"data": []}
    assert emu.admin.get("/emulator/faults").json()["rules"] == []
    assert emu.requests() == []
    # The emulator is shared by the tests of this session, so others may have added more.
    assert CHANNEL_ID in [c["id"] for c in emu.admin.get("/emulator/channels").json()["data"]]
    integrations = emu.admin.get("/emulator/integrations").json()["data"]
    assert INTEGRATION_ID in [i["id"] for i in integrations]
    assert api.get(f"/channels/{CHANNEL_ID}").status_code == 200


def test_agent_contact_view_accept_and_close(emu: Emulator, api: httpx.Client) -> None:
    created = api.post(f"/channels/{CHANNEL_ID}/messages", json=inbound_message(text="hi"))
    contact_id = created.json()["consumerContact"]["id"]
    listed = emu.admin.get("/emulator/contacts", params={"channelId": CHANNEL_ID}).json()["data"]
    assert listed[0]["customerTyping"] is False
    assert listed[0]["customerName"] == "Ann"
    assert [m["messageContent"]["payload"]["text"] for m in listed[0]["messages"]] == ["hi"]
    accepted = emu.admin.post(f"/emulator/contacts/{contact_id}/accept").json()
    assert accepted["status"] == "open"
    assert api.get(f"/contacts/{contact_id}").json()["status"] == "open"
    assert emu.admin.get("/emulator/contacts", params={"status": "new"}).json()["data"] == []
    assert emu.admin.post(f"/emulator/contacts/{contact_id}/close").json()["status"] == "closed"
    assert emu.admin.get("/emulator/contacts/nope").status_code == 404


def test_integrations_upsert_and_generated_id(emu: Emulator) -> None:
    before = len(emu.admin.get("/emulator/integrations").json()["data"])
    body = {
        "boxUrl": "http://box.test/box",
        "authorizationUrl": "http://box.test/token",
        "clientId": "c",
        "clientSecret": "s",
        "replyStyle": "legacy",
        "actionUrl": "http://box.test/action",
    }
    created = emu.admin.post("/emulator/integrations", json=body)
    assert created.status_code == 201
    assert created.json()["id"]
    assert created.json()["replyStyle"] == "legacy"
    assert "clientSecret" not in created.json()
    same = emu.admin.post("/emulator/integrations", json={**body, "id": created.json()["id"]})
    assert same.status_code == 201
    assert len(emu.admin.get("/emulator/integrations").json()["data"]) == before + 1
    bad = emu.admin.post("/emulator/integrations", json={**body, "replyStyle": "v4"})
    assert bad.json()["errors"][0]["field"] == "replyStyle"
    assert emu.admin.post("/emulator/integrations", json={}).status_code == 400
