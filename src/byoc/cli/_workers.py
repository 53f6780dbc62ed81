"""`byoc serve --workers N`: N worker processes behind one listening socket.

uvicorn's supervisor (`uvicorn.supervisors.Multiprocess`) does the work: the parent binds the
socket, spawns the workers (fresh interpreters), restarts one that dies, and on SIGTERM or
SIGINT stops them all and waits for them. Each worker is a complete `byoc serve`: its own app,
store pool, outbox worker, lifecycle loops and LISTEN connection, exactly like another pod on
the same PostgreSQL database. The parent serves nothing itself.

Spawning pickles uvicorn's configuration into each worker, so `WorkerConfig` carries plain
data (the settings, the connection limits) and each worker builds its app and its guarded
HTTP protocol when uvicorn loads the configuration there.
"""

from __future__ import annotations

import math
import os
import socket
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from byoc.cli._common import collector_paused
from byoc.ops.logging import configure as configure_json_logs
from byoc.ops.metrics import forget_exited_processes, multiprocess_directory
from byoc.ops.server_protocol import ConnectionLimits, guarded_protocol
from byoc.settings import Settings

# Where Linux tells a container its CPU quota: cgroup v2, then v1.
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")

# How long the supervisor waits for a worker to answer its health ping before it kills and
# replaces it. A worker answers only once it has imported byoc, which on a busy machine (or
# several workers starting on few cores) takes longer than uvicorn's default of 5 s: with that,
# workers were killed while still starting. A worker that has exited is noticed at once anyway.
HEALTHCHECK_SECONDS = 30


def cgroup_cpu_quota(v2: Path = CGROUP_V2_CPU_MAX, v1: Path = CGROUP_V1_CPU) -> float | None:
    """The cores' worth of CPU time the container may use, or None when it has no quota."""
    try:
        quota, period = v2.read_text().split()
    except (OSError, ValueError):
        try:
            quota = (v1 / "cpu.cfs_quota_us").read_text().strip()
            period = (v1 / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), capped by a container's CPU quota.

    A Kubernetes CPU *request* sets no quota: a pod without a CPU limit sees the node's cores,
    so set BYOC_WORKERS there."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores or 1, math.ceil(quota))
    return max(1, cores or 1)


class WorkerConfig(uvicorn.Config):
    """uvicorn's configuration of a worker: built in the parent, loaded in each worker."""

    def __init__(self, settings: Settings, limits: ConnectionLimits, **options: Any) -> None:
        # Here, not at import: `byoc serve` asks this module for the cores before it knows
        # whether it runs workers, and loads the app in its own time (`serve.serve_one`).
        from byoc.app import create_app

        self.settings = settings
        self.limits = limits
        # `http` becomes the guarded protocol in `load()`: a class made at run time does not
        # pickle. The app factory does: the settings go with it.
        super().__init__(
            partial(create_app, settings),
            factory=True,
            http="httptools",
            timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
            **options,
        )

    def configure_logging(self) -> None:
        """uvicorn calls this in the parent and first thing in each worker: JSON lines."""
        super().configure_logging()
        configure_json_logs(self.settings)

    def load(self) -> None:
        self.http = guarded_protocol(self.limits)
        with collector_paused(then_freeze=True):  # as in `byoc.cli.serve.serve_one`
            super().load()  # builds the app


class Supervisor(Multiprocess):
    """uvicorn's supervisor; when a worker has gone (died, or replaced on SIGHUP) its
    `live*` gauge files go too, so `byoc_open_websockets` forgets its sockets.

    After each pass over the workers, the files of every process that is not one of them go:
    the directory, not a memory of the pids seen at earlier passes, says who wrote there. A
    worker can serve, and die, before the supervisor's first pass has seen it: that pass waits
    for each worker's first health answer in turn (up to `HEALTHCHECK_SECONDS`), while a
    worker that started sooner already accepts sockets."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], metrics_dir: str
    ) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        running = {process.pid for process in self.processes if process.pid is not None}
        forget_exited_processes(running, self.metrics_dir)

    @property
    def failed_to_start(self) -> bool:
        return any(process.exitcode == STARTUP_FAILURE for process in self.processes)


def supervise(config: WorkerConfig, sockets: list[socket.socket]) -> int:
    """Run `config.workers` workers on `sockets` until SIGTERM or SIGINT; the exit status.

    The metric files' directory is named in the environment before the first worker starts
    (`byoc.ops.metrics`) and removed when the last has stopped."""
    with multiprocess_directory() as metrics_dir:
        supervisor = Supervisor(config, sockets, metrics_dir)
        supervisor.run()
    return STARTUP_FAILURE if supervisor.failed_to_start else 0
