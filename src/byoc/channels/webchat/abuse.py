"""Abuse limits of the web chat widget, shared by every socket and upload of this process.

A visitor may open any number of sockets, and one address may hold any number of visitors, so
budgets are kept per visitor and per client address, never per socket:

- messages: the channel's `rate_limit_messages` per `rate_limit_seconds` per visitor, and
  `BYOC_WIDGET_MESSAGES_PER_ADDRESS` per address;
- sockets: `BYOC_WIDGET_HELLOS_PER_ADDRESS` hellos per address (each stores its visitor);
- receipts and "still here": `BYOC_WIDGET_RECEIPTS_PER_VISITOR` (each is a write), the excess
  dropped without a word;
- uploads: `BYOC_WIDGET_UPLOADS_PER_VISITOR` and `BYOC_WIDGET_UPLOADS_PER_ADDRESS`, and for
  anonymous visitors a storage quota per visitor, per address and per channel (checked against
  the store, where the uploads are: `check_upload_quota`);
- typing: forwarded to CXone at most once per `BYOC_WIDGET_TYPING_INTERVAL_SECONDS` per
  conversation. A change dropped inside the interval (stopped typing, say) is sent when the
  interval ends, so the agent never keeps seeing a state the customer left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond

from byoc.channels.webchat.config import WebchatSettings
from byoc.clock import Clock
from byoc.errors import ByocError, QuotaExceeded, RateLimited
from byoc.ops.rate_limits import RateLimits, parse_limit
from byoc.settings import Settings
from byoc.store import Connection
from byoc.store.attachments import anonymous_upload_bytes
from byoc.store.locks import wait_for_others

log = logging.getLogger(__name__)

SendTyping = Callable[[bool], Awaitable[object]]


@dataclass
class _Typing:
    sent_at: float
    sent: bool
    wanted: bool
    flush: asyncio.Task[None] | None = None


class WidgetLimits:
    def __init__(self, rate_limits: RateLimits, settings: Settings, clock: Clock) -> None:
        self._rate_limits = rate_limits
        self._settings = settings
        self._clock = clock
        self._messages_per_address = parse_limit(settings.widget_messages_per_address)
        self._hellos_per_address = parse_limit(settings.widget_hellos_per_address)
        self._receipts_per_visitor = parse_limit(settings.widget_receipts_per_visitor)
        self._uploads_per_visitor = parse_limit(settings.widget_uploads_per_visitor)
        self._uploads_per_address = parse_limit(settings.widget_uploads_per_address)
        self._per_visitor: dict[tuple[int, float], RateLimitItem] = {}
        self._typing: dict[str, _Typing] = {}
        self._flushing: set[asyncio.Task[None]] = set()

    # --- messages and uploads ----------------------------------------------------------------

    def _visitor_message_limit(self, channel: WebchatSettings) -> RateLimitItem:
        key = (channel.rate_limit_messages, channel.rate_limit_seconds)
        if key not in self._per_visitor:
            seconds = max(1, math.ceil(channel.rate_limit_seconds))
            self._per_visitor[key] = RateLimitItemPerSecond(channel.rate_limit_messages, seconds)
        return self._per_visitor[key]

    async def _take(self, budgets: list[tuple[RateLimitItem, tuple[str, ...]]]) -> int | None:
        """Count one event against every budget if all allow it; else seconds to wait."""
        waits = [
            self._rate_limits.retry_after(limit, *key)
            for limit, key in budgets
            if not self._rate_limits.allows(limit, *key)
        ]
        if waits:
            return max(waits)
        for limit, key in budgets:
            self._rate_limits.hit(limit, *key)
        return None

    async def take_message(
        self, channel_id: str, channel: WebchatSettings, visitor: str, address: str
    ) -> int | None:
        """Count a customer message; None if it may go, else seconds to wait."""
        return await self._take(
            [
                (self._visitor_message_limit(channel), ("widget-messages", channel_id, visitor)),
                (self._messages_per_address, ("widget-messages", "address", address)),
            ]
        )

    async def take_hello(self, address: str) -> int | None:
        """Count a socket's hello (each stores its visitor as a customer); None if it may go,
        else seconds to wait."""
        return await self._take([(self._hellos_per_address, ("widget-hellos", address))])

    def over_receipts(self, channel_id: str, visitor: str) -> bool:
        """Count a receipt or "still here" of the visitor's; True once past their budget."""
        return not self._rate_limits.hit(
            self._receipts_per_visitor, "widget-receipts", channel_id, visitor
        )

    async def take_upload(self, channel_id: str, visitor: str, address: str) -> None:
        """Count an upload, or raise RateLimited."""
        wait = await self._take(
            [
                (self._uploads_per_visitor, ("widget-uploads", channel_id, visitor)),
                (self._uploads_per_address, ("widget-uploads", "address", address)),
            ]
        )
        if wait is not None:
            raise RateLimited(f"too many uploads; try again in {wait} s", wait)

    def check_upload_quota(
        self, conn: Connection, *, channel_id: str, customer_id: str, address: str
    ) -> None:
        """Raise QuotaExceeded if the anonymous uploads within the window pass a quota, the
        one this transaction has just stored included: it runs after that INSERT, and takes
        the channel's and then the address's quota lock until the commit, so that uploads at
        the same moment (several workers) count one another and only the sums wait."""
        settings = self._settings
        window = settings.widget_upload_quota_window_seconds
        wait_for_others(conn, "upload-quota:" + channel_id)
        wait_for_others(conn, "upload-quota-address:" + address)
        used = anonymous_upload_bytes(
            conn,
            since=self._clock.now_ms() - window * 1000,
            channel_id=channel_id,
            customer_id=customer_id,
            address=address,
        )
        quotas = (
            ("this visitor", used[0], settings.widget_upload_quota_visitor_bytes),
            ("this address", used[1], settings.widget_upload_quota_address_bytes),
            ("this channel", used[2], settings.widget_upload_quota_channel_bytes),
        )
        for who, bytes_used, quota in quotas:
            if bytes_used > quota:
                raise QuotaExceeded(
                    f"the upload quota of {who} ({quota} bytes a {window} s window) is spent",
                    window,
                )

    # --- typing ------------------------------------------------------------------------------

    async def forward_typing(self, conversation_id: str, typing: bool, send: SendTyping) -> None:
        interval = self._settings.widget_typing_interval_seconds
        now = self._clock.monotonic()
        state = self._typing.get(conversation_id)
        if state is None or now - state.sent_at >= interval:
            if state is not None and state.flush is not None:
                state.flush.cancel()
            self._forget_stale(now, interval)
            self._typing[conversation_id] = _Typing(sent_at=now, sent=typing, wanted=typing)
            await send(typing)
            return
        state.wanted = typing
        if state.flush is None and typing != state.sent:
            task = asyncio.get_running_loop().create_task(
                self._flush(state, state.sent_at + interval, send)
            )
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
            state.flush = task

    async def _flush(self, state: _Typing, deadline: float, send: SendTyping) -> None:
        """At the end of the interval, send the state the customer is in if it changed."""
        await self._clock.sleep_until(deadline)
        state.flush = None
        if state.wanted == state.sent:
            return
        state.sent, state.sent_at = state.wanted, self._clock.monotonic()
        with contextlib.suppress(ByocError):  # the conversation ended meanwhile
            await send(state.wanted)

    def _forget_stale(self, now: float, interval: float) -> None:
        if len(self._typing) < 10_000:
            return
        for conversation_id, state in list(self._typing.items()):
            if state.flush is None and now - state.sent_at >= interval:
                del self._typing[conversation_id]
