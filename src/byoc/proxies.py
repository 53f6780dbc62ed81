"""Which HTTP proxy, if any, carries `byoc.http`'s requests to each origin.

Proxies come from the environment, read when `byoc.http` opens its session: `HTTPS_PROXY` for https
origins, `HTTP_PROXY` for http ones, `ALL_PROXY` for either when its own is not set (the
lowercase names win), and `NO_PROXY`, a comma-separated list of hosts (`host` or `host:port`)
bypassed along with their subdomains, or `*` for all (`urllib`'s reading of them: no CIDR
ranges, and loopback is proxied unless listed). The proxy must be `http://` (or have no
scheme, which means the same); any other fails the exchanges it would carry rather than
being spoken to as plain http or quietly bypassed. A proxy URL's userinfo is sent as
`Proxy-Authorization: Basic`; an https origin is reached through a `CONNECT` tunnel with TLS
to the origin inside it, an http origin through requests in absolute form. Each origin's
route is decided once per session and passed to aiohttp with the request: aiohttp's own
`trust_env` would read the environment and `~/.netrc` in a worker thread on every request,
which tripled the CPU per call (bench/README.md).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit
from urllib.request import proxy_bypass_environment as _bypass  # type: ignore[attr-defined]

from multidict import CIMultiDict
from yarl import URL

# Not in typeshed's urllib.request: `(host[:port], proxies) -> whether NO_PROXY lists it`.
proxy_bypass_environment = cast(Callable[[str, Mapping[str, str]], bool], _bypass)


@dataclass(frozen=True)
class Route:
    proxy: URL | None  # None: straight to the origin; a proxy's URL without its userinfo,
    authorization: str | None = None  # which becomes this `Proxy-Authorization` value

    def headers(
        self, url: URL, headers: Mapping[str, str]
    ) -> tuple[Mapping[str, str], Mapping[str, str] | None]:
        """`(request headers, proxy headers)`: the credentials go with the CONNECT of an https
        origin, and with every request to an http one (sent to the proxy in absolute form)."""
        if self.authorization is None:
            return headers, None
        credentials = {"Proxy-Authorization": self.authorization}
        if url.scheme == "https":
            return headers, credentials
        return CIMultiDict(headers, **credentials), None


DIRECT = Route(None)


class Proxies:
    """Which proxy, if any, carries the requests to each origin.

    `environment` maps `http`, `https`, `all` to proxy URLs and `no` to the `NO_PROXY` list,
    as `urllib.request.getproxies_environment()` does.
    """

    def __init__(self, environment: Mapping[str, str]) -> None:
        self._environment = dict(environment)
        self._routes: dict[tuple[str, str | None, int | None], Route] = {}
        self._any = any(self._environment.get(key) for key in ("http", "https", "all"))

    def __bool__(self) -> bool:
        return self._any

    def route(self, url: URL) -> Route:
        origin = (url.scheme, url.host, url.port)
        if origin in self._routes:
            return self._routes[origin]
        configured = self._environment.get(url.scheme) or self._environment.get("all")
        bypass = proxy_bypass_environment(f"{url.host}:{url.port}", self._environment)
        route = _through(configured) if configured and not bypass else DIRECT
        self._routes[origin] = route  # not reached for a proxy URL we refuse: it fails again
        return route

    def endpoints(self) -> frozenset[tuple[str, int]]:
        """The `(host, port)` of every proxy `route` may send through, read as it reads them
        (one it refuses is none): for the outbound policy, which trusts exactly these."""
        found = set()
        for key in ("http", "https", "all"):
            configured = self._environment.get(key)
            try:
                proxy = _through(configured).proxy if configured else None
                if proxy is not None and proxy.host:
                    found.add((proxy.host.lower(), proxy.port or 80))
            except ValueError:  # refused, or a port that is no number: never used
                continue
        return frozenset(found)


def _through(configured: str) -> Route:
    parts = urlsplit(configured if "://" in configured else "http://" + configured)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no password
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ValueError(f"proxy {shown}: only http://host[:port] proxies are supported")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return Route(URL(shown), authorization)
