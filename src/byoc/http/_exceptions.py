"""The errors of `byoc.http`: the one hierarchy of the outgoing-call boundary (drawn in the
package docstring). aiohttp's errors become these in `_client._transport_error`."""

from __future__ import annotations


class HttpError(Exception):
    """An exchange that produced no HTTP answer."""


class HttpTimeout(HttpError):
    pass


class HttpTransportError(HttpError):
    pass


class HttpResponseTooLarge(HttpError):
    """The answer's body is longer than the request's `max_response_bytes`."""


class HttpRefusedAddress(HttpError):
    """A guarded client refused the URL or every address its host resolved to."""
