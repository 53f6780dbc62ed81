"""The widget protocol's frames (docs/webchat-protocol.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

CLOSE_CODES = {"bad-hello": 4400, "unauthenticated": 4401, "forbidden-origin": 4403}


class Hello(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    type: str
    channel: str = Field(min_length=1, max_length=200)
    visitor_id: str | None = Field(default=None, alias="visitorId")
    user_id: str | None = Field(default=None, alias="userId", max_length=200)
    signature: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    after_seq: int | None = Field(default=None, alias="afterSeq")
    thread_id: str | None = Field(default=None, alias="threadId")


class AttachmentRef(BaseModel):
    id: str
    friendly_name: str | None = Field(default=None, alias="friendlyName")


class CustomerFrame(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    type: str
    client_id: str | None = Field(default=None, alias="clientId", max_length=100)
    text: str | None = None
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=10)
    prechat: dict[str, str] | None = None
    typing: bool | None = None
    message_id: str | None = Field(default=None, alias="messageId")


class FrameError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
