"""The outbound address policy applied to a guarded HTTP client's lookups (`byoc.outbound`
says what is refused and why this is where it cannot be side-stepped); beside aiohttp, so
that the policy alone does not load it (start-up time of `byoc channels add`)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from aiohttp import ClientConnectionError
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from byoc.outbound import OutboundPolicy, RefusedAddress


class VettingResolver(AbstractResolver):
    """Answers the connector's lookups with the addresses the policy allows, and refuses a
    host that resolved to none."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or ThreadedResolver()
        self._trusted: frozenset[tuple[str, int]] = frozenset()

    def trust_proxies(self, endpoints: Iterable[tuple[str, int]]) -> None:
        """The environment's proxies are the operator's own (often on a private address): a
        connection to one (its host and port: `byoc.proxies.Proxies.endpoints`) is resolved
        unchecked. Its host on another port, or as a request's origin, is vetted as usual."""
        self._trusted = frozenset((host.lower(), port) for host, port in endpoints)

    async def check_origin(self, host: str, port: int) -> None:
        """Check the origin a proxy will connect to (RefusedAddress), never trusted; a failed
        lookup is a connection error, as the connector's own would be."""
        try:
            self._vetted(host, await self._inner.resolve(host, port, socket.AF_UNSPEC))
        except RefusedAddress:
            raise
        except OSError as exc:
            raise ClientConnectionError(f"cannot resolve {host}: {exc}") from exc

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        if (host.lower(), port) in self._trusted:
            return answers
        return self._vetted(host, answers)

    def _vetted(self, host: str, answers: list[ResolveResult]) -> list[ResolveResult]:
        """The answers the policy allows; RefusedAddress when it allows none."""
        allowed: list[ResolveResult] = []
        problems: list[str] = []
        for answer in answers:
            problem = self._policy.address_problem(ipaddress.ip_address(answer["host"]))
            if problem is None:
                allowed.append(answer)
            else:
                problems.append(problem)
        if not allowed:
            raise RefusedAddress(f"{host}: refused by the outbound policy: {'; '.join(problems)}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
