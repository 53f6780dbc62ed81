"""What the CXone administrator enters for this deployment (contract §2), as one sheet."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from byoc.settings import Settings

CHECKBOX = "Use DFO 3.0 Outbound API for replies"


@dataclass(frozen=True)
class SetupField:
    field: str
    value: str
    note: str = ""


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost")


def setup_fields(settings: Settings, client_ids: list[str]) -> list[SetupField]:
    base = settings.public_url.rstrip("/")
    action = base + "/integration/action"
    if settings.cxone_channel_integration_id:
        # Not needed with the setting, but keeps the Action URL right if the setting goes.
        action += "?" + urlencode({"channelIntegrationId": settings.cxone_channel_integration_id})
    if client_ids:
        client_value = ", ".join(client_ids)
        client_note = (
            "an active client id; its secret was shown once when it was created "
            "(lost it? `byoc clients create` makes a new pair)"
        )
    else:
        client_value = "(none yet)"
        client_note = "run `byoc clients create` and enter the id and the secret it prints"
    return [
        SetupField("Integration Box URL", base + "/integration/box"),
        SetupField("Authorization URL", base + "/integration/box/1.0/token"),
        SetupField("Client ID", client_value, client_note),
        SetupField("Client Secret", "(from `byoc clients create`)", "shown once, stored hashed"),
        SetupField(
            CHECKBOX,
            "on (recommended)",
            "both reply styles are served; on sends replies and agent-initiated messages "
            "the same DFO 3.0 way",
        ),
        SetupField("Action URL", action, "the 'Add channel' page"),
        SetupField("Reconnect URL", base + "/integration/reconnect"),
        SetupField("Remove URL", base + "/integration/remove", "deletes the channel"),
    ]


def setup_warnings(settings: Settings) -> list[str]:
    warnings: list[str] = []
    if _is_local(settings.public_url):
        warnings.append(
            f"BYOC_PUBLIC_URL is {settings.public_url}: CXone cannot reach a loopback address"
        )
    elif urlsplit(settings.public_url).scheme != "https":
        warnings.append("BYOC_PUBLIC_URL is not https: CXone sends credentials to these URLs")
    if not settings.cxone_channel_integration_id:
        warnings.append(
            "BYOC_CXONE_CHANNEL_INTEGRATION_ID is not set: after saving the integration, set it "
            "to the Integration ID CXone shows (needed to create channels)"
        )
    return warnings


def setup_document(settings: Settings, client_ids: list[str]) -> dict[str, Any]:
    return {
        "fields": [asdict(f) for f in setup_fields(settings, client_ids)],
        "channelIntegrationId": settings.cxone_channel_integration_id,
        "warnings": setup_warnings(settings),
    }
