"""JSON logs: one object per line, carrying the request, conversation and channel ids.

    {"ts": "2025-01-01T12:00:00.123Z", "level": "info", "logger": "byoc.box.router",
     "message": "...", "pid": 7, "request_id": "...", "conversation_id": "...",
     "channel_id": "..."}

The ids come from context variables: the request middleware binds the request id (and the
request's `channel_id` path parameter is read once the router has matched it); code that
learns a conversation or channel binds it with `bind(...)`.

Capabilities never reach a log line: the token of an attachment link
(`/attachments/{id}/{token}`) and the values of every query string (CXone's attachment URLs
are signed in theirs, `X-Amz-Signature=…`) are replaced by `[redacted]` in the message and in
string extras, whoever logged them (uvicorn's access line included). uvicorn's
`color_message` (the message again, with ANSI colour codes) is dropped.

Customer and agent message text is personal data. Pass it to a log call wrapped in
`MessageText(...)` (or as `extra={"text": ...}`): it is printed as `[redacted: N chars]`
unless `BYOC_LOG_MESSAGE_TEXT=true`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any, TextIO

from byoc.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("byoc_request_id", default=None)
conversation_id_var: ContextVar[str | None] = ContextVar("byoc_conversation_id", default=None)
channel_id_var: ContextVar[str | None] = ContextVar("byoc_channel_id", default=None)
# The ASGI scope of the current request: the router adds `path_params` to it in place, so a
# log line emitted inside a handler can name the channel of `/.../channel/{channel_id}/...`.
_scope_var: ContextVar[Mapping[str, Any] | None] = ContextVar("byoc_scope", default=None)

REDACTED_EXTRAS = frozenset({"text", "message_text"})
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Client libraries log every request at INFO: one line per delivery drowns everything else.
QUIET_LOGGERS = ("httpx", "httpcore")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
    "request_id",
    "conversation_id",
    "channel_id",
}


_ATTACHMENT_TOKEN = re.compile(r"(/attachments/[^/\s?#\"']+/)[^/\s?#\"']+")
_QUERY_VALUE = re.compile(r"([?&][^=&\s#\"']*=)[^&\s#\"']*")


def scrub_capabilities(text: str) -> str:
    """`text` without attachment-link tokens or query-string values."""
    if "/attachments/" in text:
        text = _ATTACHMENT_TOKEN.sub(r"\1[redacted]", text)
    if "=" in text and "?" in text:
        text = _QUERY_VALUE.sub(r"\1[redacted]", text)
    return text


class MessageText(str):
    """Message text handed to a log call; the JSON formatter redacts it unless enabled."""

    __slots__ = ()


def redacted(text: str) -> str:
    return f"[redacted: {len(text)} chars]"


def bind(*, conversation_id: str | None = None, channel_id: str | None = None) -> None:
    """Name the conversation or channel that the current task is working on."""
    if conversation_id is not None:
        conversation_id_var.set(conversation_id)
    if channel_id is not None:
        channel_id_var.set(channel_id)


RequestTokens = tuple[Token[str | None], Token[Mapping[str, Any] | None]]


def enter_request(request_id: str, scope: Mapping[str, Any]) -> RequestTokens:
    return request_id_var.set(request_id), _scope_var.set(scope)


def exit_request(tokens: RequestTokens) -> None:
    request_id_var.reset(tokens[0])
    _scope_var.reset(tokens[1])


def current_ids() -> dict[str, str]:
    """The ids known in this context, for a log line or an outgoing header."""
    ids: dict[str, str] = {}
    request_id = request_id_var.get()
    if request_id is not None:
        ids["request_id"] = request_id
    conversation_id = conversation_id_var.get()
    if conversation_id is not None:
        ids["conversation_id"] = conversation_id
    channel_id = channel_id_var.get()
    if channel_id is None:
        scope = _scope_var.get()
        if scope is not None:
            value = scope.get("path_params", {}).get("channel_id")
            channel_id = value if isinstance(value, str) else None
    if channel_id is not None:
        ids["channel_id"] = channel_id
    return ids


class ContextFilter(logging.Filter):
    """Copies the context's ids onto the record where it is emitted (same task, same context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_ids().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, *, log_message_text: bool = False) -> None:
        super().__init__()
        self.log_message_text = log_message_text

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub_capabilities(self._message(record)),
            "pid": record.process,  # which worker, under `byoc serve --workers N`
        }
        for key in ("request_id", "conversation_id", "channel_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        for key, value in vars(record).items():
            if key in _STANDARD_ATTRS or key.startswith("_"):
                continue
            if key in REDACTED_EXTRAS and isinstance(value, str) and not self.log_message_text:
                value = redacted(value)
            elif isinstance(value, str):
                value = scrub_capabilities(value)
            entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)

    def _message(self, record: logging.LogRecord) -> str:
        args = record.args
        if self.log_message_text or not args:
            return record.getMessage()
        # Redact without touching the record: other handlers (pytest's, say) share it.
        if isinstance(args, tuple):
            safe: object = tuple(redacted(a) if isinstance(a, MessageText) else a for a in args)
        elif isinstance(args, Mapping):
            safe = {k: redacted(v) if isinstance(v, MessageText) else v for k, v in args.items()}
        else:
            return record.getMessage()
        try:
            return str(record.msg) % safe
        except (TypeError, ValueError):
            return record.getMessage()


def _iso_utc(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class _ByocHandler(logging.StreamHandler[TextIO]):
    """Marks the handler `configure` installed, so that configuring again replaces it."""


def configure(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """JSON lines on stdout for the root logger and uvicorn's loggers, at `BYOC_LOG_LEVEL`.

    Only the handler installed by an earlier call is replaced; handlers others installed
    (a test runner's, say) stay.
    """
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    handler = _ByocHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(log_message_text=settings.log_message_text))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, _ByocHandler):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler


def unconfigure(handler: logging.Handler) -> None:
    """Remove a handler `configure` installed (tests)."""
    logging.getLogger().removeHandler(handler)
    handler.close()
