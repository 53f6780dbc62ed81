"""Where requests to addresses someone else chose may go: the outbound address policy.

Agent attachment URLs (chosen by whoever writes in CXone), platform webhook URLs (typed by
whoever adds a channel) and anything typed on the Action page name hosts this service then
connects to from inside its own network. Without a check, such a URL reaches loopback services,
the cloud's metadata endpoint (169.254.169.254) or the private network, and the answer comes
back to the one who chose the URL (an agent attachment is re-hosted for the customer).

`OutboundPolicy` says which addresses are refused: everything that is not globally routable
(loopback, RFC 1918 private, shared 100.64/10, link-local 169.254/16 and fe80::/10, unique-local
fc00::/7, unspecified, reserved, documentation ranges) plus multicast; an IPv4 address written
as IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is judged as the IPv4 address it is. Networks named in
`allow_private` (`BYOC_OUTBOUND_ALLOW_PRIVATE`, for development and tests) are let through.

`VettingResolver` (`byoc.outbound_resolver`, beside aiohttp: the policy alone loads neither)
applies the policy where it cannot be side-stepped: the HTTP client's
connector connects only to the addresses its resolver returns, so the address that was checked
is the one connected to (a DNS answer that changes between a check and the connection, "DNS
rebinding", has nothing to change). A URL whose host is an IP literal never reaches a resolver:
`OutboundPolicy.url_problem` covers those, and `byoc.http.HttpClient(guard=...)` calls it for
the first request and for every redirect it follows.

Errors: the resolver raises `RefusedAddress` (an `OSError`, as a failed lookup is), which the
HTTP client turns into `byoc.http.HttpRefusedAddress`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from byoc.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def redirect_location(status: int, headers: Mapping[str, str]) -> str | None:
    """Where a redirect answer points, or None when it is not one."""
    return (headers.get("Location") or None) if status in _REDIRECTS else None


class RefusedAddress(OSError):
    """Every address a host resolved to is one the policy refuses."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`"127.0.0.1/32, ::1/128"` as networks; ValueError names the entry that is not one."""
    networks: list[IPNetwork] = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP network (CIDR): {exc}") from None
    return tuple(networks)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`127.1`, `0x7f.0.0.1`, `2130706433`: forms the C resolver reads as an IPv4 address."""
    if not host or not all(c in "0123456789abcdefx." for c in host) or not host[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: tuple[IPNetwork, ...] = ()
    # What a guarded client reads of an answer that names no limit of its own.
    max_response_bytes: int = 1024 * 1024

    @classmethod
    def from_setting(cls, allow_private: str) -> OutboundPolicy:
        """From `BYOC_OUTBOUND_ALLOW_PRIVATE` (validated by `Settings`)."""
        return cls(parse_networks(allow_private))

    @classmethod
    def of(cls, settings: Settings) -> OutboundPolicy:
        return cls.from_setting(settings.outbound_allow_private)

    def address_problem(self, address: IPAddress) -> str | None:
        """Why a connection to `address` is refused, or None when it is allowed."""
        plain = _unmapped(address)
        if any(plain in net or address in net for net in self.allow_private):
            return None
        if plain.is_multicast or not plain.is_global:
            return f"{plain} is not a public address"
        return None

    def url_problem(self, url: str) -> str | None:
        """What is wrong with `url` before any lookup: scheme, host, an IP-literal host the
        policy refuses, a name that always means this machine."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (a port that is not a number raises ValueError)
        except ValueError:
            return "is not a URL"
        if parts.scheme.lower() not in SCHEMES:
            return "must be an http or https URL"
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            return "names no host"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                return self.address_problem(ipaddress.IPv4Address("127.0.0.1"))
            legacy = _legacy_ipv4(host)
            return None if legacy is None else self.address_problem(legacy)
        return self.address_problem(address)
