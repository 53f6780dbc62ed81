"""Direct messages: agent-initiated (contract §2.3, §2.5) and business-initiated (§3.5)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from byoc.clock import ManualClock
from byoc.cxone import Contact
from byoc.delivery.contacts import thread_contact
from byoc.settings import Settings
from byoc.store import Database, tenants
from byoc.store.records import Conversation, Tenant
from byoc.tenancy import DEFAULT_TENANT_ID
from tests.support import loopback
from tests.support.cli import cli_env, run_cli
from tests.support.emulator import Emulator
from tests.support.stack import Stack, running_stack
from tests.support.waiting import advance, wait_for
from tests.support.webchat import Webchat
from tests.support.widget import widget


async def test_agent_outbound_reaches_a_connected_widget_and_the_answer_continues_it(
    webchat: Webchat,
) -> None:
    visitor = secrets.token_hex(16)
    async with widget(webchat, visitorId=visitor) as w:
        first = (await w.say("hello, earlier question"))["message"]
        await asyncio.to_thread(webchat.contact_for_thread, first["threadId"])
        response = webchat.emulator.admin.post(
            f"/emulator/channels/{webchat.channel_id}/outbound",
            json={"customerId": w.welcome["customerId"], "text": "A follow-up from your agent"},
        )
        assert response.status_code == 200, response.text
        frame = await w.expect("message", message__text="A follow-up from your agent")
        new_thread = frame["message"]["threadId"]
        assert new_thread != first["threadId"]
        answer = (await w.say("thanks for following up"))["message"]
        assert answer["threadId"] == new_thread

    def texts() -> list[str]:
        contact = webchat.contact_for_thread(new_thread)
        return [m["messageContent"]["payload"]["text"] for m in contact["messages"]]

    await asyncio.to_thread(wait_for, lambda: len(texts()) == 2, what="the answer in CXone")
    assert texts() == ["A follow-up from your agent", "thanks for following up"]


async def test_agent_outbound_is_shown_when_the_widget_opens_later(webchat: Webchat) -> None:
    visitor = secrets.token_hex(16)
    async with widget(webchat, visitorId=visitor) as w:
        customer_id = w.welcome["customerId"]
        first = (await w.say("hi"))["message"]
        await asyncio.to_thread(webchat.contact_for_thread, first["threadId"])
    response = webchat.emulator.admin.post(
        f"/emulator/channels/{webchat.channel_id}/outbound",
        json={"customerId": customer_id, "text": "We have news for you"},
    )
    assert response.status_code == 200, response.text  # stored before CXone hears back
    async with widget(webchat, visitorId=visitor) as w:
        assert [m["text"] for m in w.welcome["messages"]] == ["We have news for you"]


def test_opted_out_customer_is_refused(tmp_path: Path, emulator: Emulator) -> None:
    with running_stack(tmp_path, emulator) as stack:
        accepted = stack.customer_says("hello", customer="wh-opt")
        stack.contact_for_thread(accepted["threadId"])
        opt_out = stack.signed(
            "PUT",
            f"/api/v1/channels/{stack.channel_id}/customers/wh-opt/opt-out",
            {"optedOut": True},
        )
        assert opt_out.status_code == 200, opt_out.text
        refused = emulator.admin.post(
            f"/emulator/channels/{stack.channel_id}/outbound",
            json={"customerId": accepted["customerId"], "text": "promo!"},
        )
        assert refused.status_code == 422
        validation = [c for c in emulator.callbacks() if "recipients/validation" in c["url"]]
        assert validation[-1]["status"] == 400
        assert "opted out" in validation[-1]["responseBody"]["errors"][0]["message"]
        unknown = stack.signed(
            "PUT",
            f"/api/v1/channels/{stack.channel_id}/customers/nobody/opt-out",
            {"optedOut": True},
        )
        assert unknown.status_code == 404


def test_business_outbound_through_the_admin_api(tmp_path: Path, emulator: Emulator) -> None:
    token = secrets.token_urlsafe(24)
    with running_stack(tmp_path, emulator, admin_token=token) as stack:
        first = stack.customer_says("hello", customer="wh-biz")
        stack.contact_for_thread(first["threadId"])
        url = f"{stack.url}/admin/v1/channels/{stack.channel_id}/outbound"
        body = {
            "customerId": "wh-biz",
            "text": "Your order has shipped!",
            "author": {"firstName": "Shop"},
        }
        assert loopback.post(url, json=body).status_code == 401
        assert (
            loopback.post(url, json=body, headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        started = loopback.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        assert started.status_code == 201, started.text
        thread = started.json()["threadId"]
        assert thread != first["threadId"]

        outbound = wait_for(
            lambda: [
                r
                for r in emulator.requests(path_contains="/outbound", method="POST")
                if r["status"] == 200
            ],
            what="DE outbound call",
        )
        assert outbound[0]["requestBody"]["thread"]["idOnExternalPlatform"] == thread
        assert (
            outbound[0]["requestBody"]["recipients"][0]["idOnExternalPlatform"]
            == first["customerId"]
        )
        event = wait_for(
            lambda: [
                e for e in stack.platform.of_type("message.created") if e["threadId"] == thread
            ],
            what="delivery to the platform",
        )[0]
        assert event["message"]["text"] == "Your order has shipped!"

        answer = stack.customer_says("great, thanks", customer="wh-biz", threadId=thread)
        contact = stack.contact_for_thread(thread)
        wait_for(lambda: not stack.outbox(), what="outbox drained")
        detail = emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
        assert [m["idOnExternalPlatform"] for m in detail["messages"]] == [
            started.json()["messageId"],
            answer["id"],
        ]


def test_admin_api_is_off_without_a_token(tmp_path: Path, emulator: Emulator) -> None:
    with running_stack(tmp_path, emulator) as stack:
        response = loopback.post(
            f"{stack.url}/admin/v1/channels/{stack.channel_id}/outbound",
            json={"customerId": "x", "text": "y"},
            headers={"Authorization": "Bearer anything"},
        )
        assert response.status_code == 404


def test_outbound_send_command(tmp_path: Path, emulator: Emulator) -> None:
    with running_stack(tmp_path, emulator) as stack:
        stack.customer_says("hello", customer="wh-cli")
        # Run without the server's CXone address: the command must leave the default tenant as
        # the server wrote it (`cli._common.open_store`), and call CXone with it.
        env = cli_env(
            tmp_path,
            emulator,
            BYOC_DATABASE_URL=stack.settings.database_url,
            BYOC_CXONE_API_URL="http://127.0.0.1:8090",
        )
        sent = run_cli(
            [
                "outbound", "send",
                "--channel", stack.channel_id, "--customer", "wh-cli", "--text", "From the CLI",
            ],
            env,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert "delivered to CXone and to the customer's platform" in sent.stdout
        events = stack.platform.of_type("message.created")
        assert any(e["message"]["text"] == "From the CLI" for e in events)
        unknown = run_cli(
            [
                "outbound", "send",
                "--channel", stack.channel_id, "--customer", "nobody", "--text", "x",
            ],
            env,
        )  # fmt: skip
        assert unknown.returncode == 1
        assert "not a customer" in unknown.stderr
        tenant = asyncio.run(stored_default_tenant(stack.settings.database_url))
        assert tenant.api_url == emulator.api_url


async def stored_default_tenant(database_url: str) -> Tenant:
    db = Database(database_url)
    try:
        tenant = await db.run_read(tenants.get_tenant, DEFAULT_TENANT_ID)
    finally:
        await db.close()
    assert tenant is not None
    return tenant


# --- an agent-initiated thread's CXone contact ---------------------------------------------------

DEFAULTS = Settings.model_fields
IDLE_MS = int(DEFAULTS["idle_timeout_seconds"].default * 1000)
COUNTDOWN_MS = int(DEFAULTS["idle_countdown_seconds"].default * 1000)
END_POLL_MS = int(DEFAULTS["end_poll_interval_seconds"].default * 1000)


def _agent_starts_a_thread(stack: Stack, emulator: Emulator, clock: ManualClock) -> tuple[str, str]:
    """A customer the platform knows, then an agent's direct message to them: the new thread
    and its CXone contact."""
    known = stack.customer_says("hello", customer="wh-dm")
    stack.contact_for_thread(known["threadId"])
    started = emulator.admin.post(
        f"/emulator/channels/{stack.channel_id}/outbound",
        json={"customerId": known["customerId"], "text": "A question from your agent"},
    )
    assert started.status_code == 200, started.text
    contact = started.json()["contact"]
    assert contact["threadIdOnExternalPlatform"] != known["threadId"]
    return contact["threadIdOnExternalPlatform"], contact["id"]


def _ending(stack: Stack, thread: str, *, what: str) -> dict[str, Any]:
    """The `conversation.ended` event the platform got for `thread`, once it has."""
    events = wait_for(
        lambda: [
            e for e in stack.platform.of_type("conversation.ended") if e["threadId"] == thread
        ],
        what=what,
    )
    found: dict[str, Any] = events[0]
    return found


def test_an_idle_agent_initiated_thread_ends_its_contact_in_cxone(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock) as stack:
        thread, contact_id = _agent_starts_a_thread(stack, emulator, clock)
        advance(clock, IDLE_MS)
        advance(clock, COUNTDOWN_MS)
        assert _ending(stack, thread, what="the idle ending")["reason"] == "idle"
        puts = wait_for(
            lambda: [
                r
                for r in emulator.requests(path_contains=f"/contacts/{contact_id}/status")
                if r["method"] == "PUT"
            ],
            what="the agent's contact closed in CXone",
        )
        assert puts[0]["requestBody"] == {"status": "closed"}


def test_an_agents_close_of_a_thread_it_started_is_noticed_and_refuses_the_answer(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, idle_timeout_seconds=0) as stack:
        thread, contact_id = _agent_starts_a_thread(stack, emulator, clock)
        advance(clock, 1_000)  # the contact is asked for a moment after the thread opens
        wait_for(
            lambda: stack.conversation(thread).de_contact_id == contact_id,
            what="the contact learnt",
        )
        emulator.admin.post(f"/emulator/contacts/{contact_id}/close")
        advance(clock, END_POLL_MS)
        assert _ending(stack, thread, what="the agent's close noticed")["reason"] == "agent"
        late = stack.signed(
            "POST",
            f"/api/v1/channels/{stack.channel_id}/messages",
            {"customer": {"id": "wh-dm"}, "text": "thanks!", "threadId": thread},
        )
        assert late.status_code == 409
        detail = emulator.admin.get(f"/emulator/contacts/{contact_id}").json()
        assert [m["messageContent"]["payload"]["text"] for m in detail["messages"]] == [
            "A question from your agent"
        ]


def test_a_thread_whose_contact_is_closed_when_found_ends_here_as_the_agents(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, idle_timeout_seconds=0) as stack:
        thread, contact_id = _agent_starts_a_thread(stack, emulator, clock)
        emulator.admin.post(f"/emulator/contacts/{contact_id}/close")
        advance(clock, 1_000)  # the lookup finds the contact closed: no poll interval passed
        assert _ending(stack, thread, what="the close learnt with the contact")["reason"] == "agent"
        assert stack.conversation(thread).de_contact_id == contact_id


def test_the_threads_contact_is_picked_from_the_customers_contacts() -> None:
    conversation = Conversation(
        id="thr_mine", channel_id="ch", customer_id="cus", state="open", origin="agent",
        de_thread_id="de-thread", de_contact_id=None, next_seq=2,
        last_customer_activity_at=None, created_at=0, ended_at=None, ended_reason=None,
    )  # fmt: skip

    def contact(id: str, status: str, created: str, thread: str = "thr_mine") -> Contact:
        return Contact(
            id=id, status=status, created_at=created, thread_id_on_external_platform=thread
        )

    older_open = contact("c1", "open", "2026-01-01T00:00:00.000Z")
    newer_closed = contact("c2", "closed", "2026-01-02T00:00:00.000Z")
    other_thread = contact("c3", "open", "2026-01-03T00:00:00.000Z", thread="thr_other")
    assert thread_contact([newer_closed, older_open, other_thread], conversation) == older_open
    assert thread_contact([newer_closed, other_thread], conversation) == newer_closed
    assert thread_contact([other_thread], conversation) is None
    by_de_id = Contact(id="c4", status="new", thread_id="de-thread")
    assert thread_contact([by_de_id], conversation) == by_de_id
    # CXone's thread carried across two of ours: the contact that names the other is not ours.
    anothers = Contact(
        id="c5", status="closed", thread_id="de-thread", thread_id_on_external_platform="thr_C1"
    )
    assert thread_contact([anothers], conversation) is None


def _texts_of(emulator: Emulator, contact_id: str) -> list[str]:
    detail = emulator.admin.get(f"/emulator/contacts/{contact_id}").json()
    return [m["messageContent"]["payload"]["text"] for m in detail["messages"]]


def test_a_lookup_cxone_cannot_answer_holds_back_the_customers_answer_for_seconds_only(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, idle_timeout_seconds=0) as stack:
        thread, contact_id = _agent_starts_a_thread(stack, emulator, clock)
        started_at = clock.now_ms()
        unavailable = {"match": "GET /contacts", "errorRate": 1, "errorStatus": 503}
        emulator.admin.put("/emulator/faults", json={"rules": [unavailable]}).raise_for_status()
        answer = stack.signed(
            "POST",
            f"/api/v1/channels/{stack.channel_id}/messages",
            {"customer": {"id": "wh-dm"}, "text": "my answer", "threadId": thread},
        )
        assert answer.status_code == 202, answer.text

        def answered() -> bool:
            # Each look moves the clock a second: the lookup's five attempts take under 9 s of
            # backoff, however slowly the machine runs them.
            advance(clock, 1_000)
            return "my answer" in _texts_of(emulator, contact_id)

        wait_for(answered, what="the answer", timeout=30)
        assert clock.now_ms() - started_at < 20_000  # held back for seconds, not minutes
        wait_for(  # named by the create, written as its row settles
            lambda: stack.conversation(thread).de_contact_id == contact_id,
            what="the contact the create named",
        )


def test_a_thread_an_agent_addressed_by_the_platforms_user_id_learns_its_contact(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock, idle_timeout_seconds=0) as stack:
        known = stack.customer_says("hello", customer="wh-typed")
        stack.contact_for_thread(known["threadId"])
        started = emulator.admin.post(
            f"/emulator/channels/{stack.channel_id}/outbound",
            json={"customerId": "wh-typed", "text": "Hi from your agent"},  # typed in by hand
        )
        assert started.status_code == 200, started.text
        contact = started.json()["contact"]
        assert contact["endUserIdOnExternalPlatform"] == "wh-typed"
        advance(clock, 1_000)
        wait_for(
            lambda: (
                stack.conversation(contact["threadIdOnExternalPlatform"]).de_contact_id
                == contact["id"]
            ),
            what="the contact learnt",
        )


def test_an_idle_warning_names_the_contact_a_failed_lookup_did_not_and_the_end_closes_it(
    tmp_path: Path, emulator: Emulator
) -> None:
    clock = ManualClock()
    with running_stack(tmp_path, emulator, clock=clock) as stack:
        refused = {"match": "GET /contacts", "errorRate": 1, "errorStatus": 400}
        emulator.admin.put("/emulator/faults", json={"rules": [refused]}).raise_for_status()
        thread, contact_id = _agent_starts_a_thread(stack, emulator, clock)
        advance(clock, 1_000)
        wait_for(
            lambda: (
                emulator.requests(path_contains="/contacts", method="GET")
                and not any(r["kind"] == "cxone.find_contact" for r in stack.outbox())
            ),
            what="the lookup refused, given up without a dead letter",
        )
        emulator.admin.delete("/emulator/faults").raise_for_status()
        emulator.admin.post(f"/emulator/contacts/{contact_id}/close")  # unnoticed here
        advance(clock, IDLE_MS)  # the warning lands on a contact DE opens for it
        advance(clock, COUNTDOWN_MS)
        wait_for(lambda: not stack.outbox("pending"), what="the idle end sent")

        def open_contacts() -> list[str]:
            listed = emulator.admin.get(
                "/emulator/contacts", params={"channelId": stack.channel_id}
            ).json()["data"]
            return [
                c["id"]
                for c in listed
                if c["threadIdOnExternalPlatform"] == thread
                and c["status"] not in ("closed", "resolved", "trashed")
            ]

        wait_for(lambda: not open_contacts(), what="every contact of the thread ended")
        assert stack.conversation(thread).state == "ended"
