"""Per-channel widget settings, kept as JSON on the channel row."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from byoc.errors import InvalidInput

DEFAULT_ATTACHMENT_TYPES = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
]


class PrechatField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ident: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    label: str = Field(min_length=1, max_length=200)
    type: Literal["text", "email"] = "text"
    required: bool = False


class WebchatSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins whose pages may open the widget ('*' for any).",
    )
    allow_anonymous: bool = True
    title: str = "Chat with us"
    greeting: str = "Hi! How can we help?"
    color: str = Field(default="#0b7a75", pattern=r"^#[0-9a-fA-F]{6}$")
    prechat: list[PrechatField] = Field(default_factory=list)
    max_text_length: int = Field(default=2000, ge=1, le=10_000)
    max_attachment_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    attachment_types: list[str] = Field(default_factory=lambda: list(DEFAULT_ATTACHMENT_TYPES))
    rate_limit_messages: int = Field(default=8, ge=1)
    rate_limit_seconds: float = Field(default=10.0, gt=0)
    heartbeat_seconds: float = Field(default=20.0, gt=0)
    idle_timeout_seconds: float | None = Field(default=None, ge=0)
    idle_countdown_seconds: float | None = Field(default=None, ge=0)

    def origin_allowed(self, origin: str | None) -> bool:
        if "*" in self.allowed_origins:
            return True
        return origin is not None and origin.rstrip("/") in {
            o.rstrip("/") for o in self.allowed_origins
        }

    def prechat_values(
        self, prechat: dict[str, str] | None, *, first: bool
    ) -> list[dict[str, str]] | None:
        """The pre-chat answers a message carries, as custom fields: the declared ones only,
        each cut at 1,000 characters. A conversation's `first` message needs the required ones."""
        declared = {f.ident: f for f in self.prechat}
        if first and declared:
            answers = prechat or {}
            missing = [
                f.label for f in declared.values() if f.required and not answers.get(f.ident)
            ]
            if missing:
                # Here, not at the top: the frames' module loads the bus, and a `byoc` command
                # reading a channel's settings needs neither (start-up time).
                from byoc.channels.webchat.protocol import FrameError

                raise FrameError("prechat-required", "please fill in: " + ", ".join(missing))
        if not prechat:
            return None
        return [
            {"ident": ident, "value": str(value)[:1000]}
            for ident, value in prechat.items()
            if ident in declared
        ] or None

    def public_config(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "greeting": self.greeting,
            "color": self.color,
            "prechat": [f.model_dump() for f in self.prechat],
            "maxTextLength": self.max_text_length,
            "maxAttachmentBytes": self.max_attachment_bytes,
            "attachmentTypes": self.attachment_types,
            "heartbeatSeconds": self.heartbeat_seconds,
        }


def parse_settings(raw: dict[str, Any]) -> WebchatSettings:
    try:
        return WebchatSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"web chat setting {where}: {first['msg']}") from exc
