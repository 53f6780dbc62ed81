"""The `byoc serve` process of a benchmark: its command line (with `--workers N` when asked),
waiting until it answers (or reporting why it exited), and the CPU of its whole process tree;
the other `byoc` commands of a set-up, run in this process; a GET with one TLS context.

Standard library and httpx only (byoc itself is imported by `run_byoc`, when first called), so
that every benchmark module, and every client process a benchmark starts, can import it.
"""

from __future__ import annotations

import functools
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the project (pip install -e '.[dev]')")
    return found


@functools.cache
def tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def http_get(url: str, timeout: float) -> httpx.Response:
    """`httpx.get` on this process's one TLS context: httpx builds a context for every call
    otherwise, ~40 ms of CPU spent loading the trust store, most of the cost of a poll."""
    return httpx.get(url, timeout=timeout, verify=tls())


def run_byoc(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    """`byoc ARGV` with `env` as the environment; the exit status, stdout and stderr. Run in
    this process (`byoc.cli.run_captured`): a `byoc` process per set-up step cost ~1 s of CPU
    each, mostly imports that one process pays once here. A checkout from before
    `run_captured` (an A/B run with PYTHONPATH at its src/) gets a `byoc` process, as then."""
    import byoc.cli

    if not hasattr(byoc.cli, "run_captured"):
        done = subprocess.run([tool("byoc"), *argv], env=dict(env), capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    return byoc.cli.run_captured(argv, env)


def byoc_command(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """`byoc ARGV` in this process (`run_byoc`); its stdout. A command that fails ends the
    benchmark with its output."""
    code, out, err = run_byoc(argv, env)
    if code != 0:
        raise SystemExit(f"byoc {' '.join(argv)} exited with {code}:\n{out}{err}")
    return out


@functools.cache
def serve_has_workers_option() -> bool:
    """Whether this checkout's `byoc serve` takes `--workers` (benchmarks also run against
    older checkouts): its help, from the parser in this process."""
    _, out, _ = run_byoc(["serve", "--help"], os.environ)
    return "--workers" in out


def serve_argv(workers: int | None) -> list[str]:
    """`byoc serve`, plus `--workers N` only when a worker count was asked for. A build without
    the option runs one process anyway: `--workers 1` then runs it as it is, more stops here."""
    argv = [tool("byoc"), "serve"]
    if workers is None:
        return argv
    if not serve_has_workers_option():
        if workers == 1:
            return argv
        raise SystemExit(
            f"--workers {workers}: this checkout's `byoc serve` has no --workers option "
            "(one process only); run without --workers"
        )
    return [*argv, "--workers", str(workers)]


def wait_serving(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60.0
) -> None:
    """Until `url` answers; a process that exits first (e.g. refusing its settings) ends the
    benchmark at once with the tail of its log."""
    deadline = time.monotonic() + timeout
    while True:
        check_serving(process, log)
        try:
            if http_get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise SystemExit(f"byoc serve did not answer {url} within {timeout:g} s:\n{tail}")
        time.sleep(0.1)


def check_serving(process: subprocess.Popen[bytes], log: Path) -> None:
    """A `byoc serve` that exited (before or during a run) ends the benchmark at once, with
    the tail of its log."""
    if process.poll() is not None:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise SystemExit(f"byoc serve exited with {process.returncode}:\n{tail}")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "


def process_cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of a process (all its threads), seconds; with `children`, plus the CPU of
    its children that have exited and been waited for. 0 when the process is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def descendants(root: int) -> list[int]:
    """`root` and every process below it (from each process's parent in /proc/PID/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [root], [root]
    while queue:
        children = parents.get(queue.pop(), [])
        found += children
        queue += children
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a process and all its descendants, live or exited (a worker that exited
    is counted in its parent's children time once waited for)."""
    return sum(process_cpu_seconds(pid, children=True) for pid in descendants(root))


def tree_rss_kib(root: int) -> int:
    """Resident memory (VmRSS, KiB) of a process and its live descendants: with `--workers`,
    the supervisor and every worker. Pages shared between them count once per process."""
    total = 0
    for pid in descendants(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # gone since the listing
        total += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")),
            0,
        )
    return total


def tree_fd_count(root: int, *, sockets: bool = False) -> int:
    """File descriptors (with `sockets`, only the sockets) of a process and its descendants."""
    count = 0
    for pid in descendants(root):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        if not sockets:
            count += len(fds)
            continue
        for fd in fds:
            try:
                count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:
                continue
    return count
