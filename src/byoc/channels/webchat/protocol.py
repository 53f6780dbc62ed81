"""The widget protocol (docs/webchat-protocol.md): the frames either way, and the bus events.

Frames from the widget are pydantic models, one per `type`, joined in a discriminated union and
parsed in one place (`parse_widget_frame`), which turns anything malformed into a `FrameError`
carrying the code the widget is told. Frames to the widget and the bus events a session follows
are TypedDicts: this code builds them, so they are typed but not validated again (encoding a
dict is on the path of every message pushed to a widget).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, NotRequired, TypeAlias, TypedDict, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from byoc.bus import Notification
from byoc.conversations.models import MAX_SEQ
from byoc.conversations.rich import MAX_POSTBACK
from byoc.json_leaves import leaves

CLOSE_CODES = {
    "bad-hello": 4400,
    "unauthenticated": 4401,
    "forbidden-origin": 4403,
    "rate-limited": 4429,
}


class FrameError(Exception):
    """A frame the session refuses; `code` is the `error` frame's code."""

    def __init__(self, code: str, detail: str, client_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id


# --- widget -> server ------------------------------------------------------------------------


class _WidgetFrame(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Hello(_WidgetFrame):
    type: Literal["hello"]
    channel: str = Field(min_length=1, max_length=200)
    visitor_id: str | None = Field(default=None, alias="visitorId")
    user_id: str | None = Field(default=None, alias="userId", max_length=200)
    signature: str | None = Field(default=None, max_length=200)
    user_expires: str | None = Field(default=None, alias="userExpires", max_length=20)
    name: str | None = Field(default=None, max_length=200)
    after_seq: int | None = Field(default=None, alias="afterSeq", ge=-1, le=MAX_SEQ)
    thread_id: str | None = Field(default=None, alias="threadId")


class AttachmentRef(BaseModel):
    id: str
    friendly_name: str | None = Field(default=None, alias="friendlyName")


class MessageFrame(_WidgetFrame):
    type: Literal["message"]
    client_id: str | None = Field(default=None, alias="clientId", max_length=100)
    text: str | None = None
    # Set when the customer chose a button or list item: `text` is its label.
    postback: str | None = Field(default=None, max_length=MAX_POSTBACK)
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=10)
    prechat: dict[str, str] | None = None


class TypingFrame(_WidgetFrame):
    type: Literal["typing"]
    typing: bool | None = None


class ReceiptFrame(_WidgetFrame):
    type: Literal["seen", "delivered"]
    message_id: str | None = Field(default=None, alias="messageId")


class StillHereFrame(_WidgetFrame):
    type: Literal["still_here"]


class NewConversationFrame(_WidgetFrame):
    type: Literal["new_conversation"]


class PongFrame(_WidgetFrame):
    type: Literal["pong"]


WidgetFrame: TypeAlias = Annotated[
    Hello
    | MessageFrame
    | TypingFrame
    | ReceiptFrame
    | StillHereFrame
    | NewConversationFrame
    | PongFrame,
    Field(discriminator="type"),
]
_widget_frame: TypeAdapter[WidgetFrame] = TypeAdapter(WidgetFrame)


async def receive_frame(ws: WebSocket) -> str:
    """The next frame's text; `WebSocketDisconnect` when the widget went, a `FrameError` for a
    binary frame (the protocol's frames are JSON text)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise FrameError("invalid", "frames are JSON text, not binary")
    return str(text)


def parse_widget_frame(raw: str) -> WidgetFrame:
    """The frame a widget sent, or a FrameError saying what is wrong with it."""
    try:
        frame = _widget_frame.validate_json(raw)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
    else:
        if _NUL_ESCAPE in raw and _holds_nul(frame):
            client_id = frame.client_id if isinstance(frame, MessageFrame) else None
            raise FrameError("invalid-input", "NUL characters are refused", client_id)
        return frame
    if problem["type"] == "union_tag_invalid":
        # An unknown type may still name the message it is about.
        with_id = _client_id(raw)
        raise FrameError("invalid", f"unknown frame type {problem['ctx']['tag']!r}", with_id)
    if problem["type"] == "union_tag_not_found":
        raise FrameError("invalid", "a frame needs a type")
    where = ".".join(str(part) for part in problem["loc"][1:])
    raise FrameError("invalid", f"{where}: {problem['msg']}" if where else problem["msg"])


# A NUL can only arrive as this JSON escape (a raw one is invalid JSON); a lone surrogate
# escape is already refused by the parser. PostgreSQL cannot store NUL and SQLite can: refused
# here, the widget gets the same answer on both.
_NUL_ESCAPE = "\\u0000"


def _holds_nul(frame: WidgetFrame) -> bool:
    return any(isinstance(leaf, str) and "\x00" in leaf for leaf in leaves(frame.model_dump()))


def _client_id(raw: str) -> str | None:
    with_id = json.loads(raw).get("clientId")
    return with_id if isinstance(with_id, str) and len(with_id) <= 100 else None


# --- server -> widget ------------------------------------------------------------------------

MessageView: TypeAlias = dict[str, Any]  # byoc.channels.adapter.message_view, `Message` in docs


class ConversationRef(TypedDict):
    threadId: str
    state: str


class WelcomeFrame(TypedDict):
    type: Literal["welcome"]
    customerId: str
    conversation: ConversationRef | None
    messages: list[MessageView]
    agentTyping: bool
    config: dict[str, Any]


class AckFrame(TypedDict):
    type: Literal["ack"]
    clientId: str
    message: MessageView


class MessageOut(TypedDict):
    type: Literal["message"]
    message: MessageView


class TypingOut(TypedDict):
    type: Literal["typing"]
    typing: bool
    author: dict[str, Any] | None


class StatusOut(TypedDict):
    type: Literal["status"]
    messageId: str | None
    status: str | None


class IdleWarningOut(TypedDict):
    type: Literal["idle_warning"]
    deadline: int | None


class IdleClearedOut(TypedDict):
    type: Literal["idle_cleared"]


class EndedOut(TypedDict):
    type: Literal["ended"]
    threadId: str
    reason: str


class ErrorOut(TypedDict):
    type: Literal["error"]
    code: str
    detail: str
    clientId: NotRequired[str]


class PingOut(TypedDict):
    type: Literal["ping"]


ServerFrame: TypeAlias = (
    WelcomeFrame
    | AckFrame
    | MessageOut
    | TypingOut
    | StatusOut
    | IdleWarningOut
    | IdleClearedOut
    | EndedOut
    | ErrorOut
    | PingOut
)


def encode(frame: ServerFrame) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


# --- bus events: what wakes a customer's sessions --------------------------------------------


class MessagesEvent(TypedDict):
    """New messages, on `threadId` if given; without it, re-read the store (a resync)."""

    kind: Literal["messages"]
    threadId: NotRequired[str]
    messageId: NotRequired[str]
    files: NotRequired[bool]  # the message has attachments (their links may have changed)


class TypingEvent(TypedDict):
    kind: Literal["typing"]
    threadId: str
    typing: bool
    author: dict[str, Any] | None


class StatusEvent(TypedDict):
    kind: Literal["status"]
    messageId: str
    status: str


class IdleWarningEvent(TypedDict):
    kind: Literal["idle_warning"]
    threadId: str
    deadline: int | None


class IdleClearedEvent(TypedDict):
    kind: Literal["idle_cleared"]
    threadId: str


class EndedEvent(TypedDict):
    kind: Literal["ended"]
    threadId: str
    reason: str


BusEvent: TypeAlias = (
    MessagesEvent | TypingEvent | StatusEvent | IdleWarningEvent | IdleClearedEvent | EndedEvent
)
_KINDS = frozenset({"messages", "typing", "status", "idle_warning", "idle_cleared", "ended"})
RESYNC: MessagesEvent = {"kind": "messages"}


def read_bus_event(notification: Notification) -> BusEvent:
    """A notification as the event it is; one of an unknown kind asks for a resync."""
    # Only this process's code publishes (directly, or through PostgreSQL as JSON), so the
    # kind decides the shape; the store, not the event, holds the data a session sends.
    if notification.get("kind") in _KINDS:
        return cast(BusEvent, notification)
    return RESYNC
