"""Odds and ends: unknown routes, static files, seeded ids, agent reply options."""

from __future__ import annotations

import httpx

from cxone_emulator.config import EmulatorConfig
from tests.support.box_receiver import CHANNEL_ID, BoxReceiver, inbound_message
from tests.support.emulator import Emulator, running_emulator


def test_unknown_route_answers_with_a_cxone_error(api: httpx.Client) -> None:
    response = api.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["errors"][0]["errorCode"] == "NotFound"
    assert api.patch("/channels").status_code == 405


def test_console_and_static_files(emu: Emulator) -> None:
    assert emu.admin.get("/").headers["location"] == "/console"
    page = emu.admin.get("/console")
    assert page.headers["content-type"].startswith("text/html")
    assert "/static/console.js" in page.text
    script = emu.admin.get("/static/console.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text.replace("never innerHTML", "")
    assert emu.admin.get("/static/missing.js").status_code == 404
    assert emu.admin.get("/static/console.py").status_code == 404
    assert emu.admin.get("/static/..%2Fapp.py").status_code == 404


def test_same_seed_names_things_the_same_way() -> None:
    def thread_id() -> str:
        with running_emulator(EmulatorConfig(seed=11)) as emu, emu.api_client() as api:
            channel = {
                "id": "c1",
                "idOnExternalPlatform": "c1",
                "channelIntegrationId": "i1",
                "realExternalPlatformId": "custom",
                "name": "C",
                "isPrivate": True,
                "hasTreeStructure": False,
            }
            emu.admin.post(
                "/emulator/integrations",
                json={
                    "id": "i1",
                    "boxUrl": "http://127.0.0.1:9/box",
                    "authorizationUrl": "http://127.0.0.1:9/token",
                    "clientId": "c",
                    "clientSecret": "s",
                },
            ).raise_for_status()
            api.post("/channels", json=channel).raise_for_status()
            created = api.post("/channels/c1/messages", json=inbound_message()).json()
            value: str = created["message"]["threadId"]
            return value

    assert thread_id() == thread_id()


def test_reply_with_attachments_and_a_named_agent(
    emu: Emulator, box: BoxReceiver, api: httpx.Client
) -> None:
    created = api.post(f"/channels/{CHANNEL_ID}/messages", json=inbound_message()).json()
    reply = emu.admin.post(
        f"/emulator/contacts/{created['consumerContact']['id']}/reply",
        json={
            "text": "See attached",
            "attachments": [{"friendlyName": "invoice.pdf", "url": "https://files.test/i.pdf"}],
            "agent": {"firstName": "Dana", "surname": "Diaz", "nickname": "DD"},
        },
    )
    assert reply.status_code == 200
    sent = [c for c in box.box_calls() if c["authorization"]][-1]["body"]
    assert sent["attachments"] == [
        {"friendlyName": "invoice.pdf", "url": "https://files.test/i.pdf"}
    ]
    assert sent["authorUser"]["firstName"] == "Dana"
    assert sent["authorUser"]["nickname"] == "DD"
    bad = emu.admin.post(
        f"/emulator/contacts/{created['consumerContact']['id']}/reply",
        json={"text": "x", "attachments": [{"friendlyName": "no url"}]},
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "attachments[0].url"


def test_agent_actions_on_unknown_things_are_404(emu: Emulator) -> None:
    assert emu.admin.post("/emulator/contacts/999/reply", json={"text": "x"}).status_code == 404
    assert emu.admin.post("/emulator/contacts/999/typing", json={"typing": True}).status_code == 404
    outbound = emu.admin.post(
        "/emulator/channels/nope/outbound", json={"customerId": "c", "text": "x"}
    )
    assert outbound.status_code == 404
    assert outbound.json()["errors"][0]["errorCode"] == "ChannelNotFound"
