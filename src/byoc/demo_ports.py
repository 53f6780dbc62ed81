"""The demo's ports: taken before anything starts, so that a busy one is one clear line."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class DemoPorts:
    middleware: int
    emulator: int
    platform: int


class DemoError(Exception):
    """The demo cannot go on; its message is the one line the user sees."""


# The flag of `byoc demo` that moves each port, named in the busy-port message.
PORT_FLAGS = {"middleware": "--port", "emulator": "--emulator-port", "platform": "--platform-port"}


def take_port(port: int, role: str) -> socket.socket:
    """Bind the port now, so that a busy one is reported before anything has started."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc.strerror}"
        raise DemoError(
            f"port {port} ({role}) {reason}; choose another with {PORT_FLAGS[role]} PORT"
        ) from None
    return sock


def take_ports(ports: DemoPorts) -> tuple[socket.socket, socket.socket]:
    """The middleware's and the platform's sockets, bound; the emulator's port checked (the
    emulator is a process of its own and binds it itself)."""
    taken: list[socket.socket] = []
    try:
        taken.append(take_port(ports.middleware, "middleware"))
        taken.append(take_port(ports.platform, "platform"))
        take_port(ports.emulator, "emulator").close()
    except DemoError:
        for sock in taken:
            sock.close()
        raise
    return taken[0], taken[1]
