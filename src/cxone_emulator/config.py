"""Settings of one emulator instance, built by the caller and handed to `create_app`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ReplyStyle = Literal["legacy", "dfo3"]
# How a reply callback names its DE message: in the body (`message.id`, what the emulator
# assumes CXone does), in an `Idempotency-Key` header only, or not at all (a tenant whose
# retries cannot be told from new messages).
MessageIds = Literal["body", "header", "none"]
MESSAGE_IDS: tuple[MessageIds, ...] = ("body", "header", "none")


def parse_message_ids(value: str) -> MessageIds:
    for choice in MESSAGE_IDS:
        if value == choice:
            return choice
    raise ValueError(f"message_ids must be one of {', '.join(MESSAGE_IDS)}")


@dataclass
class IntegrationConfig:
    """A BYOC integration as an admin registers it in CXone (contract §2)."""

    id: str
    box_url: str
    authorization_url: str
    client_id: str
    client_secret: str
    reply_style: ReplyStyle = "dfo3"
    name: str = "BYOC"
    action_url: str | None = None
    message_ids: MessageIds = "body"


@dataclass
class ChannelConfig:
    """A channel that exists from the start, so tests need not create one first."""

    id: str
    integration_id: str
    name: str = "Chat"
    id_on_external_platform: str | None = None


@dataclass
class EmulatorConfig:
    base_path: str = "/dfo/3.0"
    # The emulator's own external URL; when None it is derived from each request's base URL.
    public_url: str | None = None
    brand_id: int = 1001
    tenant_id: str = "11eb0358-724c-4b8c-9a4f-0242ac110003"
    business_unit_id: int = 4600
    area: str = "na1"
    domain: str = "niceincontact.com"
    access_key_id: str = "emulator-access-key"
    access_key_secret: str = "emulator-access-secret"
    client_id: str = "emulator-app"
    client_secret: str = "emulator-app-secret"
    token_ttl_seconds: float = 3600
    callback_timeout_seconds: float = 5.0
    # Extra attempts on 5xx, timeout or connection error, always with the same DE message id.
    callback_retries: int = 2
    seed: int | None = None
    integrations: list[IntegrationConfig] = field(default_factory=list)
    channels: list[ChannelConfig] = field(default_factory=list)
    attachment_ttl_seconds: float = 3600
    one_time_token_ttl_seconds: float = 300
    # The request and callback logs keep this many newest entries, so a benchmark cannot
    # exhaust memory.
    log_limit: int = 10_000
    agent_user_id: int = 4242

    def __post_init__(self) -> None:
        # A trailing slash would double up when joined with "/channels/..."; normalise once.
        self.base_path = "/" + self.base_path.strip("/") if self.base_path.strip("/") else ""
        known = {integration.id for integration in self.integrations}
        for channel in self.channels:
            if channel.integration_id not in known:
                raise ValueError(
                    f"channel {channel.id!r} names unknown integration {channel.integration_id!r}"
                )
