"""Several middleware processes on one PostgreSQL database, as a scaled-out deployment runs:
two `byoc serve` instances, or one `byoc serve --workers N`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from byoc.box.credentials import new_client_credentials
from byoc.settings import Settings
from byoc.store.records import Channel
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.servers import answering, free_port
from tests.support.stack import (
    connect_emulator,
    contact_for_thread,
    middleware_settings,
    prepare_store,
)
from tests.support.waiting import run_async, wait_for


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the BYOC_* environment a deployment would set."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        env[f"BYOC_{name.upper()}"] = str(value)
    return env


def child_pids(pid: int) -> set[int]:
    """The processes whose parent is `pid` now (Linux /proc)."""
    children: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (command) state ppid ...": the command may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            children.add(int(entry.name))
    return children


def descendants(pid: int) -> set[int]:
    """The processes `pid` started, and the ones they started, and so on (Linux /proc)."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = set().union(*(child_pids(parent) for parent in frontier)) - found
        found |= children
        frontier = children
    return found


def running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Instance:
    def __init__(
        self,
        name: str,
        settings: Settings,
        log_dir: Path,
        *,
        args: Sequence[str] = (),
        log_level: str = "warning",
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._settings = settings
        self._args = list(args)
        self._log_level = log_level
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Instance:
        env = {**os.environ, **settings_env(self._settings), "BYOC_LOG_LEVEL": self._log_level}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "byoc.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self._args,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers in its process group: `kill` ends them all
        )
        process = self.process

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"instance {self.name} exited; see {self._log.name}")
            answer = answering(lambda: loopback.get(self.url + "/healthz", timeout=1))()
            return answer is not None and answer.status_code == 200

        wait_for(healthy, timeout=60, what=f"instance {self.name} to start ({self._log.name})")
        return self

    def log_entries(self) -> list[dict[str, Any]]:
        """The JSON lines logged so far, by the process and any worker it started."""
        entries = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{") and line.endswith(b"}"):
                entries.append(json.loads(line))
        return entries

    def kill(self) -> None:
        """SIGKILL to every process of the instance, as when its pod dies: no shutdown hooks,
        claims left behind, sockets cut."""
        assert self.process is not None
        self._kill_group()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None:
            self._kill_group()  # a worker its parent left behind
        self._log.close()

    def _kill_group(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class Cluster:
    a: Instance
    b: Instance
    emulator: Emulator
    channel_id: str
    channel_secret: str
    settings: Settings
    origin: str = "https://watering-hole.example"

    def contact_for_thread(self, thread_id: str) -> dict[str, Any]:
        return contact_for_thread(self.emulator, self.channel_id, thread_id)


@dataclass
class Prepared:
    """A store with the default tenant, a web chat channel and CXone's client credentials."""

    settings: Settings
    client_id: str
    client_secret: str
    channel_id: str
    channel_secret: str


def prepare(tmp_path: Path, emulator: Emulator, database_url: str, **overrides: Any) -> Prepared:
    settings = middleware_settings(tmp_path, emulator, database_url=database_url, **overrides)
    client_id, client_secret = new_client_credentials()
    channel_id = "chat_" + secrets.token_hex(6)
    channel_secret = secrets.token_urlsafe(24)
    run_async(
        prepare_store(
            settings,
            Channel(
                id=channel_id,
                tenant_id="default",
                adapter="webchat",
                name="Scaled",
                webhook_url=None,
                secret=channel_secret,
                created_at=0,
                settings={"allowed_origins": ["*"]},
            ),
            client_id,
            client_secret,
        )
    )
    return Prepared(settings, client_id, client_secret, channel_id, channel_secret)


@contextmanager
def two_instances(
    tmp_path: Path, emulator: Emulator, database_url: str, **overrides: Any
) -> Iterator[Cluster]:
    # One process each (`byoc serve` would start one per core on PostgreSQL): two instances.
    p = prepare(tmp_path, emulator, database_url, **{"workers": 1, **overrides})
    a = Instance("a", p.settings, tmp_path)
    b = Instance("b", p.settings, tmp_path)
    try:
        a.start()
        b.start()
        # CXone's load balancer happened to pick B for its callbacks.
        connect_emulator(emulator, b.url, p.client_id, p.client_secret, p.channel_id)
        yield Cluster(a, b, emulator, p.channel_id, p.channel_secret, p.settings)
    finally:
        a.stop()
        b.stop()


@dataclass
class Workers:
    """One `byoc serve --workers N`, CXone's callbacks pointed at it. It logs at info level:
    the JSON lines carry the `pid` of the worker that wrote them."""

    server: Instance
    emulator: Emulator
    channel_id: str
    settings: Settings
    origin: str = "https://watering-hole.example"

    def contact_for_thread(self, thread_id: str) -> dict[str, Any]:
        return contact_for_thread(self.emulator, self.channel_id, thread_id)


@contextmanager
def workers_server(
    tmp_path: Path, emulator: Emulator, database_url: str, *, workers: int, **overrides: Any
) -> Iterator[Workers]:
    p = prepare(tmp_path, emulator, database_url, **overrides)
    server = Instance(
        "serve", p.settings, tmp_path, args=("--workers", str(workers)), log_level="info"
    )
    try:
        server.start()
        connect_emulator(emulator, server.url, p.client_id, p.client_secret, p.channel_id)
        yield Workers(server, emulator, p.channel_id, p.settings)
    finally:
        server.stop()
