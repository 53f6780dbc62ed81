"""The HTTP client for every call the middleware makes: CXone's DE API, platform webhooks,
agent attachments, the CLI's provisioning calls.

One small surface (`HttpClient.build_request` / `send` / `request`) over aiohttp: its
connector keeps connections alive per origin (at most `max_connections` open at once), its
parser reads answers with a length, chunked or ending at close, and it sends a request with
an idempotent method (GET, HEAD, PUT, DELETE, OPTIONS) once more when a kept connection
turns out to have died before any answer; a POST is then left to its caller (the outbox
retries deliveries, which are idempotent on their ids). Redirects are not followed, no
cookies are kept and no compression is asked for: none of the services we call needs them.

Errors (the one hierarchy of this boundary; callers map it to theirs):

    HttpError
    ├── HttpTimeout           the whole exchange took longer than its time limit
    ├── HttpTransportError    connect refused, reset, bad status line, TLS failure, bad URL,
    │                         a header holding a line break, a proxy's refusal, …
    ├── HttpResponseTooLarge  the answer's body is longer than `max_response_bytes`
    └── HttpRefusedAddress    a guarded client's URL, or every address it resolves to, refused

aiohttp's own errors become these in one place, `_transport_error`. Every exchange has a
time limit for the whole of it (`send(..., timeout=)`); a connection whose exchange was cut
short is closed, never reused.

TLS is checked against the system's trust store (`ssl.create_default_context()`, which honours
`SSL_CERT_FILE` and `SSL_CERT_DIR`), loaded by the first session that sees those values (~50 ms).

Proxies come from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`),
read when the session opens and decided once per origin: see `byoc.proxies`.

Addresses: `resolver` (not closed by the client) answers the connector's lookups; the connector
connects only to what it returns. `guard=OutboundPolicy` (`byoc.outbound`) installs a vetting
resolver, checks each URL's scheme and IP-literal host before sending, follows up to
`HttpRequest.max_redirects` redirects of a GET or HEAD (each checked again, one time limit in
all) and caps answers at the policy's `max_response_bytes`. Behind a proxy the origin is checked
before the hand-over; the proxy resolves it again (rebinding is then the proxy's to prevent).

The seam for tests is the `transport` argument: a coroutine function that answers an
`HttpRequest` with an `HttpResponse`, in place of the network.

The package: `_models` (request, response, `response()` for test transports), `_exceptions`
(the tree above), `_client` (`HttpClient` and everything aiohttp). Import from `byoc.http`.
"""

from byoc.http._client import USER_AGENT, HttpClient
from byoc.http._exceptions import (
    HttpError,
    HttpRefusedAddress,
    HttpResponseTooLarge,
    HttpTimeout,
    HttpTransportError,
)
from byoc.http._models import (
    HttpRequest,
    HttpResponse,
    QueryParams,
    RequestParts,
    Transport,
    response,
)

__all__ = [
    "USER_AGENT",
    "HttpClient",
    "HttpError",
    "HttpRefusedAddress",
    "HttpRequest",
    "HttpResponse",
    "HttpResponseTooLarge",
    "HttpTimeout",
    "HttpTransportError",
    "QueryParams",
    "RequestParts",
    "Transport",
    "response",
]
