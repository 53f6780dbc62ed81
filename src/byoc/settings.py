"""Settings, read from `BYOC_*` environment variables.

Settings are plain data: they are built by the caller (the CLI or a test) and handed to
`create_app(settings)`; nothing here opens a connection or reads a file at import time.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections import Counter
from typing import Literal
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "development-only"})

# What the bundled CXone emulator accepts: a production service that still has these talks to
# no real CXone (or, worse, to whoever answers on the emulator's address).
EMULATOR_CREDENTIALS = {
    "BYOC_CXONE_ACCESS_KEY_ID": "emulator-access-key",
    "BYOC_CXONE_ACCESS_KEY_SECRET": "emulator-access-secret",
    "BYOC_CXONE_CLIENT_ID": "emulator-app",
    "BYOC_CXONE_CLIENT_SECRET": "emulator-app-secret",
}

# A production secret must be long and must not be guessable. The estimate is the Shannon
# entropy of the string's own character frequencies times its length, where a repeated run
# counts once (the length is the number of distinct three-character windows, plus two): 32
# random hex digits score 115 bits at the median and never below 85 in 100,000 draws, 32
# random base64 characters about 146, while `"a" * 40`, `"0123456789" * 4` and
# `"password" * 5` score 0, 40 and 28: the bar at 64 sits between the two groups.
MIN_SECRET_LENGTH = 32
MIN_SECRET_ENTROPY_BITS = 64.0


class PlaceholderSecretError(ValueError):
    """Settings that are acceptable for development only (a placeholder or weak secret, an
    emulator credential, a plain-HTTP public URL, CXone on loopback) outside development.
    The message has one line per problem."""


# A fill-me-in value anywhere in a secret: `REPLACE_ME_…`, `change-me`, `your-admin-token`.
_FILL_ME_IN = re.compile(
    r"(?<![a-z])(?:replace|change)[-_. ]?me(?![a-z])|placeholder"
    r"|(?<![a-z])your[-_. ]?(?:[a-z]+[-_. ])?(?:secret|token|key)(?![a-z])"
)


def is_placeholder(secret: str) -> bool:
    """The development default, or a fill-me-in value (the shipped example manifests' among
    them)."""
    value = secret.strip().lower()
    return value in PLACEHOLDER_SECRETS or _FILL_ME_IN.search(value) is not None


def sequential_share(secret: str) -> float:
    """The share of neighbouring characters that repeat or count up or down by one
    (`abcdef…`, `0123…`): about 0.05 for random base64, 0.2 for random hex, which stays
    under 0.55 in 100,000 draws of 32 digits; a secret above 0.7 is a pattern."""
    if len(secret) < 2:
        return 1.0
    steps = [abs(ord(b) - ord(a)) <= 1 for a, b in itertools.pairwise(secret)]
    return sum(steps) / len(steps)


def estimated_entropy_bits(secret: str) -> float:
    """A rough upper bound on the secret's entropy, from its own character frequencies."""
    if not secret:
        return 0.0
    counts = Counter(secret)
    total = len(secret)
    per_char = -sum(n / total * math.log2(n / total) for n in counts.values())
    windows = {secret[i : i + 3] for i in range(max(total - 2, 1))}
    return per_char * min(total, len(windows) + 2)


def weak_secret_problem(name: str, secret: str) -> str | None:
    if len(secret) < MIN_SECRET_LENGTH:
        return f"{name} must be at least {MIN_SECRET_LENGTH} characters"
    if is_placeholder(secret):
        return f"{name} is a placeholder: fill in a random value"
    make = "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if sequential_share(secret) > 0.7:
        return f"{name} is too predictable (a run of repeated or consecutive characters; {make})"
    if estimated_entropy_bits(secret) < MIN_SECRET_ENTROPY_BITS:
        return (
            f"{name} is too predictable (about {estimated_entropy_bits(secret):.0f} bits; "
            f"use at least {MIN_SECRET_ENTROPY_BITS:.0f}, {make})"
        )
    return None


def is_loopback_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def settings_error_lines(exc: ValidationError | PlaceholderSecretError) -> list[str]:
    """One line per problem, for a command line to print."""
    if isinstance(exc, PlaceholderSecretError):
        return str(exc).splitlines()
    lines: list[str] = []
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, PlaceholderSecretError):
            lines.extend(str(cause).splitlines())
        else:
            where = ".".join(str(part) for part in error["loc"])
            name = f"BYOC_{where.upper()}" if where else "settings"
            lines.append(f"{name}: {error['msg']}")
    return lines


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

    # The HTTP server (`byoc serve`): a request's head must arrive within the header timeout;
    # an idle kept-alive connection is closed after the keep-alive timeout; past the connection
    # bound (per process) the longest-waiting idle or slow connection makes room for a new one.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    http_keep_alive_timeout_seconds: int = Field(default=5, ge=1)
    http_max_connections: int = Field(default=20_000, ge=1)
    # Processes `byoc serve` runs behind its one listening socket; unset: one per available
    # core on PostgreSQL, one on SQLite (which several processes cannot share).
    workers: int | None = Field(default=None, ge=1)

    # Tokens this service issues to CXone (contract §2.1).
    token_signing_key: SecretStr = SecretStr("development-only")
    token_ttl_seconds: int = 900

    # Failed attempts at the box token endpoint before it answers 429 (`limits` notation).
    token_failures_per_client: str = "10/minute"
    token_failures_per_address: str = "30/minute"
    # Failed links of the Action, Reconnect and Remove pages per client address (each one
    # costs a call to CXone: `byoc.provisioning.link_throttle`).
    admin_link_failures_per_address: str = "20/minute"
    # Hosts the Action, Reconnect and Remove pages may send the browser back to (`backUrl`),
    # comma-separated; a name admits its subdomains too. Any other `backUrl` is not followed.
    action_back_url_hosts: str = "niceincontact.com,nice-incontact.com,nicecxone.com"

    # Abuse limits of the web chat widget, across every socket of this process: messages per
    # client address (each visitor's own budget is the channel's `rate_limit_*`), uploads per
    # visitor and per address, typing frames forwarded to CXone per conversation.
    widget_messages_per_address: str = "120/minute"
    widget_hellos_per_address: str = "120/minute"
    widget_receipts_per_visitor: str = "300/minute"
    widget_uploads_per_visitor: str = "10/minute"
    widget_uploads_per_address: str = "30/minute"
    widget_typing_interval_seconds: float = Field(default=2.0, ge=0)
    # Bytes that anonymous visitors may upload within the quota window, per visitor, per
    # address and per channel; uploads no message refers to are deleted after the grace period.
    widget_upload_quota_window_seconds: int = Field(default=86_400, ge=1)
    widget_upload_quota_visitor_bytes: int = Field(default=50 * 1024 * 1024, ge=0)
    widget_upload_quota_address_bytes: int = Field(default=200 * 1024 * 1024, ge=0)
    widget_upload_quota_channel_bytes: int = Field(default=5 * 1024 * 1024 * 1024, ge=0)
    widget_upload_grace_seconds: int = Field(default=86_400, ge=1)
    widget_upload_sweep_interval_seconds: float = Field(default=60.0, gt=0)
    widget_upload_sweep_batch: int = Field(default=200, ge=1)

    # Retention: conversations ended more than this many days ago lose their messages and
    # attachments (unset: kept for ever). The purge runs every interval, in batches of this many
    # messages and conversations a transaction.
    retention_days: int | None = Field(default=None, ge=1)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    retention_batch: int = Field(default=500, ge=1)
    # PostgreSQL: every instance vacuums the outbox and the conversations this often (0: never,
    # autovacuum alone): see byoc.store.upkeep.
    store_vacuum_interval_seconds: float = Field(default=5.0, ge=0)

    # Limits and the platform API.
    max_body_bytes: int = 1_048_576
    signature_tolerance_seconds: int = 300
    # For a platform moving to v3: body-only (v2) signatures also on the routes whose path names
    # what they act on (a transcript read, an opt-out), each use logged. Off: refused there.
    signature_v2_everywhere: bool = False
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
    end_check_min_interval_seconds: float = 1.0

    # OpenTelemetry tracing (needs the `otel` extra); exporter set by OTEL_EXPORTER_OTLP_*.
    otel_enabled: bool = False
    otel_service_name: str = "byoc"

    # The admin API (business-initiated outbound); disabled while empty.
    admin_token: SecretStr = SecretStr("")

    # `/metrics` off the public listener. With `ops_port`, `byoc serve` also listens there (on
    # `ops_host`, else the main listener's address) for `/metrics`, `/healthz` and `/readyz`
    # only, and the main listener answers `/metrics` with 404. With `metrics_token`, `/metrics`
    # wants `Authorization: Bearer <token>` wherever it is served. Production needs one of them.
    ops_port: int | None = Field(default=None, ge=1, le=65_535)
    ops_host: str | None = None
    metrics_token: SecretStr = SecretStr("")

    # Requests to addresses someone else chose (agent attachments, platform webhooks) never go
    # to loopback, private or link-local addresses except those in these comma-separated CIDRs
    # (development and tests: "127.0.0.1/32"). Production refuses to start with any unless
    # `outbound_allow_private_in_production` says that this is meant.
    outbound_allow_private: str = ""
    outbound_allow_private_in_production: bool = False

    @field_validator("outbound_allow_private")
    @classmethod
    def _networks(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP network (CIDR): {exc}") from None
        return value

    @field_validator("action_back_url_hosts")
    @classmethod
    def _back_url_hosts(cls, value: str) -> str:
        names = [n for n in (e.strip().strip(".").lower() for e in value.split(",")) if n]
        for name in names:
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", name):
                raise ValueError(f"{name!r} is no host name with its domain (niceincontact.com)")
        return ",".join(names)  # as `provisioning.channels.back_url_of` compares them

    @field_validator("ops_port")
    @classmethod
    def _ops_port_apart(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value == info.data.get("port"):
            raise ValueError("must differ from BYOC_PORT: the two listeners serve different routes")
        return value

    @field_validator(
        "token_failures_per_client",
        "token_failures_per_address",
        "admin_link_failures_per_address",
        "widget_messages_per_address",
        "widget_hellos_per_address",
        "widget_receipts_per_visitor",
        "widget_uploads_per_visitor",
        "widget_uploads_per_address",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse_rate_limit(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit like '30/minute'") from exc
        return value

    @model_validator(mode="after")
    def _refuse_placeholders_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        problems: list[str] = []
        placeholders = [
            name
            for name, value in (
                ("BYOC_TOKEN_SIGNING_KEY", self.token_signing_key),
                ("BYOC_CXONE_ACCESS_KEY_SECRET", self.cxone_access_key_secret),
                ("BYOC_CXONE_CLIENT_SECRET", self.cxone_client_secret),
            )
            if is_placeholder(value.get_secret_value())
        ]
        if placeholders:
            problems.append(
                "placeholder secrets are refused outside development: " + ", ".join(placeholders)
            )
        elif len(self.token_signing_key.get_secret_value()) < MIN_SECRET_LENGTH:
            problems.append(
                f"BYOC_TOKEN_SIGNING_KEY must be at least {MIN_SECRET_LENGTH} characters"
            )
        if self.environment == "production":
            problems.extend(self._production_problems(skip_signing_key=bool(problems)))
        if problems:
            raise PlaceholderSecretError("\n".join(problems))
        return self

    def _production_problems(self, *, skip_signing_key: bool) -> list[str]:
        """What production refuses beyond placeholders: each problem is one line."""
        problems: list[str] = []
        secrets_to_check = [
            ("BYOC_ADMIN_TOKEN", self.admin_token.get_secret_value()),
            ("BYOC_METRICS_TOKEN", self.metrics_token.get_secret_value()),
        ]
        if not skip_signing_key:
            secrets_to_check.append(
                ("BYOC_TOKEN_SIGNING_KEY", self.token_signing_key.get_secret_value())
            )
        for name, secret in secrets_to_check:
            if name != "BYOC_TOKEN_SIGNING_KEY" and secret == "":
                continue  # the admin API is disabled; /metrics is not served with a token
            problem = weak_secret_problem(name, secret)
            if problem:
                problems.append(problem)
        if self.ops_port is None and not self.metrics_token.get_secret_value():
            problems.append(
                "GET /metrics would be public on the main listener: set BYOC_OPS_PORT (a "
                "separate listener for it and the probes) or BYOC_METRICS_TOKEN (a bearer token)"
            )
        values = {
            "BYOC_CXONE_ACCESS_KEY_ID": self.cxone_access_key_id,
            "BYOC_CXONE_ACCESS_KEY_SECRET": self.cxone_access_key_secret.get_secret_value(),
            "BYOC_CXONE_CLIENT_ID": self.cxone_client_id,
            "BYOC_CXONE_CLIENT_SECRET": self.cxone_client_secret.get_secret_value(),
        }
        emulator = [name for name, value in values.items() if EMULATOR_CREDENTIALS[name] == value]
        if emulator:
            problems.append(
                "the CXone emulator's credentials are refused in production: " + ", ".join(emulator)
            )
        if urlsplit(self.public_url).scheme != "https":
            problems.append(
                f"BYOC_PUBLIC_URL must be https:// in production (is {self.public_url})"
            )
        for name, url in (
            ("BYOC_CXONE_API_URL", self.cxone_api_url),
            ("BYOC_CXONE_TOKEN_URL", self.cxone_token_url),
        ):
            if is_loopback_host(url):
                problems.append(f"{name} points at this machine ({url}), not at CXone")
        if self.outbound_allow_private.strip() and not self.outbound_allow_private_in_production:
            problems.append(
                "BYOC_OUTBOUND_ALLOW_PRIVATE lets platform and attachment URLs reach private "
                f"addresses ({self.outbound_allow_private}); in production also set "
                "BYOC_OUTBOUND_ALLOW_PRIVATE_IN_PRODUCTION=true if this is meant"
            )
        return problems
