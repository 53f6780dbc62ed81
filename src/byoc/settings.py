"""Settings, read from `BYOC_*` environment variables.

Settings are plain data: they are built by the caller (the CLI or a test) and handed to
`create_app(settings)`; nothing here opens a connection or reads a file at import time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "development-only"})


class PlaceholderSecretError(ValueError):
    """A secret still has its development placeholder outside development."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BYOC_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="URL at which CXone and the platform reach this service.",
    )
    database_url: str = "sqlite:///./var/byoc.db"
    auto_migrate: bool = True
    log_level: str = "info"
    # Customer and agent message text in logs is personal data: redacted unless enabled.
    log_message_text: bool = False
    # On SIGTERM `byoc serve` stops accepting and lets in-flight requests finish this long.
    shutdown_grace_seconds: int = 20

    # Tokens this service issues to CXone (contract §2.1).
    token_signing_key: SecretStr = SecretStr("development-only")
    token_ttl_seconds: int = 900

    # Limits and the platform API.
    max_body_bytes: int = 1_048_576
    signature_tolerance_seconds: int = 300
    webhook_timeout_seconds: float = 5.0

    # The default CXone tenant; more tenants are added with `byoc tenants add`.
    cxone_api_url: str = "http://127.0.0.1:8090/dfo/3.0"
    cxone_token_url: str = "http://127.0.0.1:8090/auth/token"
    cxone_access_key_id: str = "emulator-access-key"
    cxone_access_key_secret: SecretStr = SecretStr("emulator-access-secret")
    cxone_client_id: str = "emulator-app"
    cxone_client_secret: SecretStr = SecretStr("emulator-app-secret")
    cxone_brand_id: int = 1001
    cxone_tenant_id: str = "11eb0358-724c-4b8c-9a4f-0242ac110003"
    cxone_business_unit_id: int = 4600
    cxone_timeout_seconds: float = 5.0

    # Provisioning (`byoc channels create`, the Action URL page, `byoc custom-fields sync`).
    # The "Integration ID" CXone shows once the BYOC integration is saved; an Action URL may
    # carry its own `?channelIntegrationId=` instead (one per tenant).
    cxone_channel_integration_id: str | None = None
    # Where `byoc tenants discover` asks for a tenant's regional endpoints (contract §3).
    cxone_discovery_url: str = "https://cxone.niceincontact.com"
    # JSON or TOML list of customer custom-field definitions for `byoc custom-fields sync`.
    custom_fields_file: str | None = None

    # Outbox delivery.
    outbox_max_attempts: int = 12
    outbox_backoff_base_seconds: float = 0.5
    outbox_backoff_max_seconds: float = 60.0
    outbox_poll_interval_seconds: float = 1.0
    outbox_batch_size: int = 64
    outbox_lease_seconds: float = 30.0

    # Conversation lifecycle (contract §4): idle customers, agent-ended conversations.
    idle_timeout_seconds: float = 120.0
    idle_countdown_seconds: float = 20.0
    idle_end_action: Literal["close", "resolve", "abandon", "thread"] = "close"
    idle_warning_text: str = (
        "Are you still there? This chat will close in {seconds} seconds unless you reply."
    )
    idle_ended_text: str = "This chat was closed because we did not hear from you."
    timer_poll_interval_seconds: float = 0.5
    end_poll_interval_seconds: float = 5.0
    end_poll_batch_size: int = 20
    end_check_min_interval_seconds: float = 2.0

    # OpenTelemetry tracing (needs the `otel` extra); exporter set by OTEL_EXPORTER_OTLP_*.
    otel_enabled: bool = False
    otel_service_name: str = "byoc"

    # The admin API (business-initiated outbound); disabled while empty.
    admin_token: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _refuse_placeholders_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        placeholders = [
            name
            for name, value in (
                ("BYOC_TOKEN_SIGNING_KEY", self.token_signing_key),
                ("BYOC_CXONE_ACCESS_KEY_SECRET", self.cxone_access_key_secret),
                ("BYOC_CXONE_CLIENT_SECRET", self.cxone_client_secret),
            )
            if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
        ]
        if placeholders:
            raise PlaceholderSecretError(
                "placeholder secrets are refused outside development: " + ", ".join(placeholders)
            )
        if len(self.token_signing_key.get_secret_value()) < 32:
            raise PlaceholderSecretError("BYOC_TOKEN_SIGNING_KEY must be at least 32 characters")
        return self
