"""Every operation of the OpenAPI document, fuzzed from its own schema: never a 5xx.

A bounded, seeded schemathesis run against the app on loopback, with valid credentials where a
route needs them (box bearer token, admin token, signed platform requests), and in about half
of the requests the ids of a real channel, thread and customer in the path so that they get
past the lookup into the handlers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from byoc.channels.signing import request_target, signed_headers
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.stack import Stack, box_token, running_stack

ADMIN_TOKEN = "admin-token-0123456789abcdef0123456789abcdef"
EXAMPLES_PER_OPERATION = 7  # per pass
# 257 today; far fewer means schemathesis stopped generating, not that the service got better.
MIN_REQUESTS = 200
SEED = 20261130


class Credentials(requests.auth.AuthBase):
    """Whatever the route asks for; a platform request is signed over its exact body bytes."""

    def __init__(self, stack: Stack, box_token: str) -> None:
        self.stack = stack
        self.box_token = box_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path = request.path_url
        if path.startswith("/integration/box/") and not path.endswith("/token"):
            request.headers["Authorization"] = f"Bearer {self.box_token}"
        elif path.startswith("/admin/"):
            request.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        elif path.startswith("/api/"):
            body = request.body or b""
            raw = body.encode() if isinstance(body, str) else body
            assert isinstance(raw, bytes), "schemathesis sends bodies as bytes"
            target = request_target(str(request.method), *path.partition("?")[::2])
            request.headers.update(signed_headers(self.stack.channel_secret, raw, target=target))
        return request


@pytest.fixture
def stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    with running_stack(tmp_path, emulator, admin_token=ADMIN_TOKEN) as running:
        yield running


def test_no_operation_answers_5xx(stack: Stack) -> None:
    # Imported here, by the one test that needs them: they take seconds to import, which every
    # pytest-xdist worker would pay at collection otherwise.
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.result import Ok

    document = loopback.get(stack.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    # A second pass without NUL characters, which are refused before any handler runs.
    printable = schemathesis.openapi.from_dict(document)
    printable.config.generation.update(allow_x00=False)
    passes = [
        (schema, GenerationMode.POSITIVE),
        (schema, GenerationMode.NEGATIVE),
        (printable, GenerationMode.POSITIVE),
    ]
    auth = Credentials(stack, box_token(stack))
    customer = "wh-user-1"
    thread_id = stack.customer_says("hello", customer=customer)["threadId"]
    real_ids = {
        "channel_id": stack.channel_id,
        "thread_id": thread_id,
        # A legacy reply names CXone's thread as its post: the id CXone gave the thread.
        "post_id": stack.contact_for_thread(thread_id)["threadId"],
        "customer_id": customer,
    }
    failures: list[str] = []
    counts: dict[str, int] = {}
    statuses: dict[int, int] = {}
    started = time.monotonic()

    def fuzz(operation: Any, mode: GenerationMode) -> None:
        label = f"{operation.method.upper()} {operation.path}"
        counts.setdefault(label, 0)

        @seed(SEED)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode), real=st.booleans())
        def run(case: Any, real: bool) -> None:
            if real and case.path_parameters:
                for name in case.path_parameters.keys() & real_ids.keys():
                    case.path_parameters[name] = real_ids[name]
            response = case.call(base_url=stack.url, auth=auth, timeout=10)
            counts[label] += 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{label} -> {response.status_code} {response.text[:200]}\n"
                    f"  {case.as_curl_command()}"
                )

        try:
            run()
        except Unsatisfiable:
            # An operation without parameters or body has nothing to make invalid.
            if mode is GenerationMode.POSITIVE:
                raise

    for pass_schema, mode in passes:
        results = list(pass_schema.get_all_operations())
        operations = [result.ok() for result in results if isinstance(result, Ok)]
        assert len(operations) == len(results), "the OpenAPI document does not load"
        assert len(operations) >= 15
        for operation in operations:
            fuzz(operation, mode)

    elapsed = time.monotonic() - started
    print(f"schemathesis: {sum(counts.values())} requests in {elapsed:.1f} s; {statuses}; {counts}")
    assert all(counts.values()), counts
    assert sum(counts.values()) >= MIN_REQUESTS, counts
    assert not failures, "\n".join(failures)
