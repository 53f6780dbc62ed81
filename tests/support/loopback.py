"""The tests' HTTP clients: httpx's, all on one TLS context built once for the run.

httpx builds a TLS context for every client it makes, one-shot calls such as `httpx.post`
included, and loading the trust store into it costs about 50 ms of CPU: more than most requests
of a test. These are httpx's own calls with that context passed in; everything else is as
httpx does it.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

TLS = ssl.create_default_context()


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(verify=TLS, **kwargs)


def async_client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=TLS, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, verify=TLS, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, verify=TLS, **kwargs)
