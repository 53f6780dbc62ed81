"""`byoc serve --workers N`: N processes behind one socket, working together as pods do."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from websockets.exceptions import ConnectionClosed

from byoc.cli._workers import available_cores, cgroup_cpu_quota
from byoc.cli.serve import worker_count
from byoc.ops.metrics import forget_exited_processes
from byoc.settings import Settings
from tests.support import loopback
from tests.support.cli import run_cli
from tests.support.cluster import Workers, child_pids, running, workers_server
from tests.support.emulator import Emulator
from tests.support.servers import free_port
from tests.support.waiting import wait_for
from tests.support.widget import widget_at

KEEP_ALIVE_SECONDS = 1  # after it an idle callback connection closes: the next one is new


def access_lines(server: Workers, request: str) -> list[dict[str, Any]]:
    """The access lines of the requests that contain `request`, from every worker."""
    return [
        entry
        for entry in server.server.log_entries()
        if entry["logger"] == "uvicorn.access" and request in entry["message"]
    ]


def access_pids(server: Workers, request: str) -> set[int]:
    """The workers that answered requests whose access line contains `request`."""
    return {int(entry["pid"]) for entry in access_lines(server, request)}


def socket_pid(server: Workers, local_port: int) -> int:
    """The worker that accepted the WebSocket from this client port."""

    line = f':{local_port} - "WebSocket /webchat/v1/ws" [accepted]'

    def accepted() -> int | None:
        for entry in server.server.log_entries():
            if line in entry["message"]:
                return int(entry["pid"])
        return None

    return wait_for(accepted, timeout=30, what="the accept line of the widget's socket")


def scrape(url: str) -> dict[str, list[Sample]]:
    response = loopback.get(url + "/metrics", timeout=10)
    assert response.status_code == 200
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


def sample(families: dict[str, list[Sample]], family: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in families.get(family, [])
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def agent_says(server: Workers, thread_id: str, text: str) -> None:
    contact = server.contact_for_thread(thread_id)
    response = server.emulator.admin.post(
        f"/emulator/contacts/{contact['id']}/reply", json={"text": text}
    )
    assert response.status_code == 200, response.text


@pytest.mark.postgres
def test_two_workers_answer_one_port_and_metrics_count_them_all(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    ops_port = free_port()
    ops = f"http://127.0.0.1:{ops_port}"  # every worker serves the operations listener too
    with workers_server(tmp_path, emulator, postgres_url, workers=2, ops_port=ops_port) as server:

        def both_answered() -> bool:
            for _ in range(10):  # a connection each: any worker may accept it
                assert loopback.get(server.server.url + "/healthz", timeout=10).status_code == 200
            return len(access_pids(server, '"GET /healthz ')) >= 2

        wait_for(both_answered, timeout=120, what="/healthz answered by two processes")
        pids = access_pids(server, '"GET /healthz ')
        assert len(pids) == 2
        assert server.server.process is not None
        assert server.server.process.pid not in pids  # the parent only supervises

        # Whichever worker answers the scrape, it counts every worker's requests.
        def counted() -> float:
            return sample(
                scrape(ops),
                "byoc_http_request_duration_seconds",
                "byoc_http_request_duration_seconds_count",
                route="/healthz",
            )

        answered = len(access_lines(server, '"GET /healthz '))  # the start-up's checks too
        wait_for(lambda: counted() == answered, timeout=30, what=f"{answered} in /metrics")
        families = scrape(ops)
        assert sample(families, "byoc_build_info", "byoc_build_info") == 1
        # Per-process families have no meaning summed over workers.
        assert not [name for name in families if name.startswith("process_")]


@pytest.mark.postgres
async def test_a_reply_another_worker_took_from_cxone_reaches_the_widget(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    with workers_server(
        tmp_path,
        emulator,
        postgres_url,
        workers=2,
        http_keep_alive_timeout_seconds=KEEP_ALIVE_SECONDS,
        idle_timeout_seconds=0,
    ) as server:
        async with widget_at(server.server.url, server.channel_id, server.origin) as w:
            holder = await asyncio.to_thread(socket_pid, server, w.ws.local_address[1])
            message = (await w.say("hello from the widget"))["message"]
            thread = message["threadId"]
            contact = await asyncio.to_thread(server.contact_for_thread, thread)

            def in_cxone() -> bool:
                detail = emulator.admin.get(f"/emulator/contacts/{contact['id']}").json()
                texts = [m["messageContent"]["payload"].get("text") for m in detail["messages"]]
                return "hello from the widget" in texts

            await asyncio.to_thread(wait_for, in_cxone, what="the customer's message in CXone")

            callback = f"/2.0/channel/{server.channel_id}/outbound HTTP"
            replies = 0
            with ThreadPoolExecutor(max_workers=4) as pool:
                # Rounds of concurrent replies, each round on fresh connections, until a
                # worker other than the socket's took a callback.
                while access_pids(server, callback) <= {holder} and replies < 80:
                    texts = [f"reply {replies + i}" for i in range(4)]
                    replies += len(texts)
                    for done in [pool.submit(agent_says, server, thread, t) for t in texts]:
                        await asyncio.wrap_future(done)
                    for _ in range(len(texts)):
                        frame = await w.expect("message", message__sender="agent", timeout=30)
                        texts.remove(frame["message"]["text"])
                    assert texts == []
                    await asyncio.sleep(KEEP_ALIVE_SECONDS + 0.5)
        takers = access_pids(server, callback)
        assert takers - {holder}, f"every callback went to the socket's worker {holder}"
        assert len(takers | {holder}) == 2


@pytest.mark.postgres
async def test_a_killed_worker_is_replaced_and_sigterm_stops_every_process(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    with workers_server(tmp_path, emulator, postgres_url, workers=2) as server:
        parent = server.server.process
        assert parent is not None

        def open_sockets() -> float:
            families = scrape(server.server.url)
            return sample(families, "byoc_open_websockets", "byoc_open_websockets")

        async with widget_at(server.server.url, server.channel_id, server.origin) as w:
            holder = await asyncio.to_thread(socket_pid, server, w.ws.local_address[1])
            await asyncio.to_thread(
                wait_for, lambda: open_sockets() == 1, timeout=30, what="one socket in /metrics"
            )
            os.kill(holder, signal.SIGKILL)
            with pytest.raises(ConnectionClosed):
                await w.expect("message", timeout=30)

        def replaced() -> set[int]:
            started = {
                int(match.group(1))
                for entry in server.server.log_entries()
                if (match := re.fullmatch(r"Started server process \[(\d+)\]", entry["message"]))
            }
            return started - {holder} if len(started) == 3 else set()

        workers = await asyncio.to_thread(wait_for, replaced, timeout=60, what="a new worker")
        # The killed worker's socket no longer counts, whichever worker answers.
        await asyncio.to_thread(
            wait_for, lambda: open_sockets() == 0, timeout=30, what="no socket in /metrics"
        )
        children = child_pids(parent.pid)
        assert workers <= children

        parent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, 60) == 0
        await asyncio.to_thread(
            wait_for,
            lambda: not [pid for pid in children if running(pid)],
            timeout=30,
            what="every child of byoc serve to exit",
        )


def worker_wrote(directory: Path, pid: int, sockets: int) -> None:
    """The metric files of worker `pid` holding `sockets` widget sockets, as prometheus_client
    writes them: its live gauges, and its counters."""
    for prefix, metric in (("gauge_livesum", "byoc_open_websockets"), ("counter", "byoc_c")):
        values = MmapedDict(str(directory / f"{prefix}_{pid}.db"))  # type: ignore[no-untyped-call]
        values.write_value(mmap_key(metric, metric, [], [], "?"), float(sockets), 0.0)  # type: ignore[no-untyped-call]
        values.close()  # type: ignore[no-untyped-call]


def counted_sockets(directory: Path) -> float:
    """`byoc_open_websockets` as a scrape reads it from the workers' files."""
    families = MultiProcessCollector(None, path=str(directory)).collect()  # type: ignore[no-untyped-call]
    by_name = {f.name: f.samples for f in families}
    return sample(by_name, "byoc_open_websockets", "byoc_open_websockets")


def test_the_files_of_every_process_but_the_running_ones_are_forgotten(tmp_path: Path) -> None:
    """What the supervisor runs after each pass (`Supervisor.keep_subprocess_alive`): the
    directory says who wrote there, so a worker that served and died before the supervisor's
    first pass ever saw it is forgotten too. (A killed worker's socket leaving /metrics, through
    the real supervisor: `test_a_killed_worker_is_replaced_and_sigterm_stops_every_process`.)"""
    first, second = 1001, 1002
    worker_wrote(tmp_path, first, sockets=0)
    worker_wrote(tmp_path, second, sockets=1)  # took a widget's socket, then was killed
    assert counted_sockets(tmp_path) == 1
    assert forget_exited_processes({first}, str(tmp_path)) == {second}
    assert counted_sockets(tmp_path) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{first}.db", f"counter_{second}.db", f"gauge_livesum_{first}.db"]
    )  # the dead worker's counters still count
    assert forget_exited_processes({first}, str(tmp_path)) == set()
    assert forget_exited_processes(set(), str(tmp_path)) == {first}


def test_sqlite_refuses_several_workers_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "BYOC_DATABASE_URL": f"sqlite:///{tmp_path / 'byoc.db'}"}
    flag = run_cli(["serve", "--workers", "2"], env)
    assert flag.returncode == 2
    assert flag.stderr.splitlines() == [
        "byoc serve: --workers 2 needs PostgreSQL (BYOC_DATABASE_URL=postgresql://…): on SQLite "
        "one process holds the single writer and the widget sockets' wake-ups are in-process"
    ]
    setting = run_cli(["serve"], {**env, "BYOC_WORKERS": "3"})
    assert setting.returncode == 2
    assert setting.stderr.startswith("byoc serve: BYOC_WORKERS=3 needs PostgreSQL")
    assert not (tmp_path / "byoc.db").exists()  # refused before anything opened the store


def test_workers_default_to_the_cores_on_postgresql_and_to_one_on_sqlite() -> None:
    sqlite = Settings(database_url="sqlite:///./byoc.db")
    postgres = Settings(database_url="postgresql://byoc@db.example/byoc")
    assert worker_count(sqlite, None) == 1
    assert worker_count(postgres, None) == available_cores()
    assert available_cores() <= len(os.sched_getaffinity(0))
    assert worker_count(postgres.model_copy(update={"workers": 3}), None) == 3
    assert worker_count(postgres.model_copy(update={"workers": 3}), 2) == 2


def test_a_container_cpu_quota_caps_the_cores(tmp_path: Path) -> None:
    v2 = tmp_path / "cpu.max"
    v1 = tmp_path / "cpu"
    assert cgroup_cpu_quota(v2, v1) is None  # neither file: no quota
    v2.write_text("max 100000\n")
    assert cgroup_cpu_quota(v2, v1) is None
    v2.write_text("150000 100000\n")
    assert cgroup_cpu_quota(v2, v1) == 1.5
    v2.unlink()
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(v2, v1) == 2.0
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(v2, v1) is None


def test_workers_must_be_positive() -> None:
    refused = run_cli(["serve", "--workers", "0"], dict(os.environ))
    assert refused.returncode == 2
    assert "--workers: must be at least 1, not 0" in refused.stderr
