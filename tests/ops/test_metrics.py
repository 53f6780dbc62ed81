"""`/metrics` after real traffic over loopback: every family, labelled by templates."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from byoc.ops.metrics import cxone_path_template
from tests.support import loopback
from tests.support.stack import Stack
from tests.support.waiting import wait_for


def scrape(url: str) -> dict[str, list[Sample]]:
    response = loopback.get(url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert matching, f"no sample {name}{labels} in {samples}"
    return sum(matching)


def test_metrics_after_a_round_trip_and_a_dead_letter(stack: Stack) -> None:
    accepted = stack.customer_says("Hello")
    contact = stack.contact_for_thread(accepted["threadId"])
    assert stack.agent_replies(contact["id"], "Hi Ada").status_code == 200
    wait_for(lambda: stack.platform.of_type("message.created"), what="the reply on the platform")
    # One reply the platform refuses for good: a dead letter.
    stack.platform.fail_with = 400
    assert stack.agent_replies(contact["id"], "refused").status_code == 200
    wait_for(lambda: stack.outbox(state="dead"), what="a dead letter")
    loopback.get(stack.url + "/no/such/page", timeout=5)

    families = scrape(stack.url)

    http = families["byoc_http_request_duration_seconds"]
    messages_route = "/api/v1/channels/{channel_id}/messages"
    assert value(http, "byoc_http_request_duration_seconds_count", route=messages_route) >= 1
    assert (
        value(
            http,
            "byoc_http_request_duration_seconds_count",
            route="/integration/box/2.0/channel/{channel_id}/outbound",
            status_class="2xx",
            method="POST",
        )
        == 2
    )
    assert value(http, "byoc_http_request_duration_seconds_count", route="unmatched") == 1
    routes = {s.labels["route"] for s in http}
    assert not any(stack.channel_id in route for route in routes), routes

    cxone = families["byoc_cxone_request_duration_seconds"]
    created = value(
        cxone,
        "byoc_cxone_request_duration_seconds_count",
        method="POST",
        path="/channels/{channelId}/messages",
        outcome="ok",
    )
    assert created >= 1
    assert not any(stack.channel_id in s.labels["path"] for s in cxone)

    assert value(families["byoc_box_tokens_issued"], "byoc_box_tokens_issued_total") >= 1
    refreshes = families["byoc_cxone_token_refreshes"]
    assert value(refreshes, "byoc_cxone_token_refreshes_total") >= 1
    deliveries = families["byoc_outbox_deliveries"]
    assert value(deliveries, "byoc_outbox_deliveries_total", result="delivered") >= 2
    assert value(deliveries, "byoc_outbox_deliveries_total", result="dead_lettered") == 1
    assert value(families["byoc_outbox_rows"], "byoc_outbox_rows", state="dead") == 1
    assert value(families["byoc_outbox_rows"], "byoc_outbox_rows", state="pending") >= 0
    oldest = families["byoc_outbox_oldest_pending_age_seconds"]
    assert value(oldest, "byoc_outbox_oldest_pending_age_seconds") >= 0
    assert value(families["byoc_open_websockets"], "byoc_open_websockets") >= 0
    assert value(families["byoc_pending_timers"], "byoc_pending_timers") >= 0
    assert value(families["byoc_build_info"], "byoc_build_info") == 1
    assert value(families["process_resident_memory_bytes"], "process_resident_memory_bytes") > 0


def test_each_app_counts_only_its_own_requests(stack: Stack) -> None:
    before = scrape(stack.url)["byoc_http_request_duration_seconds"]
    healthz = {"route": "/healthz", "status_class": "2xx"}
    name = "byoc_http_request_duration_seconds_count"
    assert not any(s.name == name and s.labels.get("route") == "/healthz" for s in before)
    for _ in range(3):
        assert loopback.get(stack.url + "/healthz", timeout=5).status_code == 200
    after = scrape(stack.url)["byoc_http_request_duration_seconds"]
    assert value(after, name, **healthz) == 3


def test_cxone_paths_become_templates() -> None:
    assert cxone_path_template("/channels/chat_1/messages") == "/channels/{channelId}/messages"
    assert (
        cxone_path_template("/channels/c%2F1/messages/m_9/status")
        == "/channels/{channelId}/messages/{messageId}/status"
    )
    assert (
        cxone_path_template("/channels/c/threads/t/sender-actions")
        == "/channels/{channelId}/threads/{threadId}/sender-actions"
    )
    assert cxone_path_template("/contacts/42/status") == "/contacts/{contactId}/status"
    assert cxone_path_template("/channels") == "/channels"
    assert (
        cxone_path_template("/customers/custom-field-definitions")
        == "/customers/custom-field-definitions"
    )
