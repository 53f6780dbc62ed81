"""Adapters to external platforms, behind one small protocol (`ChannelAdapter`)."""

from __future__ import annotations

# The adapters' names, as channels store them (`channels.adapter`) and as the CLI, the Action
# URL page and provisioning offer them. `byoc.app` builds one adapter for each name.
WEBHOOK = "webhook"
WEBCHAT = "webchat"
ADAPTERS = (WEBHOOK, WEBCHAT)
