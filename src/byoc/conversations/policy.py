"""How long a customer may stay silent: the idle timeout and countdown, what is said, and how
the conversation is ended in CXone; from the settings, overridden per channel."""

from __future__ import annotations

from dataclasses import dataclass, replace

from byoc.settings import Settings
from byoc.store.records import Channel


@dataclass(frozen=True)
class LifecyclePolicy:
    idle_timeout_ms: int
    countdown_ms: int
    warning_text: str
    ended_text: str
    end_action: str

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecyclePolicy:
        return cls(
            idle_timeout_ms=int(settings.idle_timeout_seconds * 1000),
            countdown_ms=int(settings.idle_countdown_seconds * 1000),
            warning_text=settings.idle_warning_text,
            ended_text=settings.idle_ended_text,
            end_action=settings.idle_end_action,
        )

    def for_channel(self, channel: Channel) -> LifecyclePolicy:
        """Per-channel overrides (`idle_timeout_seconds`, `idle_countdown_seconds`)."""
        policy = self
        timeout = channel.settings.get("idle_timeout_seconds")
        if timeout is not None:
            policy = replace(policy, idle_timeout_ms=int(float(timeout) * 1000))
        countdown = channel.settings.get("idle_countdown_seconds")
        if countdown is not None:
            policy = replace(policy, countdown_ms=int(float(countdown) * 1000))
        return policy

    @property
    def idle_enabled(self) -> bool:
        return self.idle_timeout_ms > 0
