"""One registry from outbox kind to handler, checked when it is built: every kind of
`byoc.outbox.kinds` has exactly one handler, and nothing else has one.

A handler here takes the row's typed payload and returns an `Outcome`. Beneath it, the code it
calls (a CXone call through `cxone_call`, a channel adapter, a lookup) raises the
`byoc.outbox.errors` tree; `_route` is the one place that turns it into the outcome:
`RetryLater` → `Retry`, `PermanentFailure` → `DeadLetter`, `Gone` → `Settled` with a warning
(the message or conversation was purged or erased: there is nothing left to deliver, and a
dead letter would only keep a reference to it). A payload that does not fit its kind is
dead-lettered, as nothing would ever deliver it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from byoc.channels import ADAPTERS
from byoc.channels.adapter import ChannelAdapter
from byoc.channels.attachment_store import AttachmentRehoster
from byoc.clock import Clock
from byoc.conversations.lifecycle import LifecycleLoops
from byoc.delivery.common import preload_messages
from byoc.delivery.contacts import ContactFinder
from byoc.delivery.to_cxone import ToCxone
from byoc.delivery.to_platform import ToPlatform
from byoc.outbox import Gone, PermanentFailure, RetryLater, kinds
from byoc.outbox.outcome import DeadLetter, Outcome, Retry, Settled
from byoc.outbox.preloads import Preload
from byoc.outbox.worker import DeadLetterHook, Handler
from byoc.store import Connection, Database
from byoc.store.records import OutboxRow
from byoc.tenancy import TenantClients

log = logging.getLogger(__name__)

P = TypeVar("P", bound=kinds.Payload)


class RegistryError(Exception):
    """The handlers do not cover the kinds exactly: a bug, found at start-up."""


def _decode(cls: type[P], row: OutboxRow) -> P:
    payload = kinds.decode(row)
    if not isinstance(payload, cls):
        raise ValueError(f"row of kind {row.kind!r} routed to {cls.KIND!r}")
    return payload


def _route(
    cls: type[P], deliver: Callable[[P, OutboxRow], Awaitable[Outcome]]
) -> tuple[str, Handler]:
    async def handler(row: OutboxRow) -> Outcome:
        try:
            payload = _decode(cls, row)
        except ValueError as exc:
            return DeadLetter(f"malformed outbox row: {exc}")
        try:
            return await deliver(payload, row)
        except RetryLater as exc:
            return Retry(str(exc), exc.retry_after)
        except PermanentFailure as exc:
            return DeadLetter(str(exc))
        except Gone as exc:
            log.warning("outbox: row %s (%s) settled without delivery: %s", row.id, row.kind, exc)
            return Settled()

    return cls.KIND, handler


def _hook(cls: type[P], hook: Callable[[Connection, P, str], None]) -> tuple[str, DeadLetterHook]:
    def run(conn: Connection, row: OutboxRow, error: str) -> None:
        try:
            payload = _decode(cls, row)
        except ValueError:
            return  # nothing to say about a row that names nothing
        hook(conn, payload, error)

    return cls.KIND, run


def _exactly_the_kinds(handlers: Sequence[tuple[str, Handler]]) -> dict[str, Handler]:
    names = [name for name, _ in handlers]
    twice = sorted({n for n in names if names.count(n) > 1})
    missing = sorted(set(kinds.NAMES) - set(names))
    unknown = sorted(set(names) - set(kinds.NAMES))
    if twice or missing or unknown:
        raise RegistryError(
            f"outbox handlers: twice {twice}, missing {missing}, not a kind {unknown}"
        )
    return dict(handlers)


def every_adapter(adapters: Mapping[str, ChannelAdapter]) -> Mapping[str, ChannelAdapter]:
    """`adapters`, when it has one adapter for each name of `byoc.channels.ADAPTERS` and no
    other: a channel of any name the CLI or the Action page offers can be delivered to."""
    missing = sorted(set(ADAPTERS) - set(adapters))
    unknown = sorted(set(adapters) - set(ADAPTERS))
    if missing or unknown:
        raise RegistryError(f"platform adapters: missing {missing}, not an adapter {unknown}")
    return adapters


class Deliveries:
    """Every delivery, to CXone and to the platform, keyed by outbox kind."""

    def __init__(
        self,
        db: Database,
        tenants: TenantClients,
        adapters: Mapping[str, ChannelAdapter],
        lifecycle: LifecycleLoops,
        *,
        end_check_min_interval_ms: int = 1000,
        rehoster: AttachmentRehoster | None = None,
        clock: Clock | None = None,
    ) -> None:
        adapters = every_adapter(adapters)
        self.to_cxone = ToCxone(
            db,
            tenants,
            adapters,
            lifecycle,
            end_check_min_interval_ms=end_check_min_interval_ms,
            clock=clock,
        )
        self.to_platform = ToPlatform(db, adapters, rehoster=rehoster, clock=clock)
        self.contacts = ContactFinder(db, tenants, clock=clock)

    def handlers(self) -> dict[str, Handler]:
        cx, pf = self.to_cxone, self.to_platform
        return _exactly_the_kinds(
            [
                _route(kinds.CustomerMessage, cx.create_message),
                _route(kinds.MessageStatus, cx.message_status),
                _route(kinds.CustomerTyping, cx.customer_typing),
                _route(kinds.BusinessOutbound, cx.business_outbound),
                _route(kinds.SystemMessage, cx.system_message),
                _route(kinds.EndContact, cx.end_contact),
                _route(kinds.FindContact, self.contacts.find_contact),
                _route(kinds.AgentMessage, pf.message),
                _route(kinds.AgentTyping, pf.typing),
                _route(kinds.IdleChanged, pf.idle),
                _route(kinds.ConversationEnded, pf.ended),
            ]
        )

    def preloads(self) -> dict[str, Preload]:
        """The kinds whose delivery's read runs in the transaction that claims their rows (fresh
        by their intake, or due by a pass of the outbox: `byoc.outbox.preloads`)."""
        return {
            kinds.CustomerMessage.KIND: preload_messages,
            kinds.AgentMessage.KIND: preload_messages,
        }

    def dead_letter_hooks(self) -> dict[str, DeadLetterHook]:
        return dict(
            [
                _hook(kinds.CustomerMessage, self.to_cxone.customer_message_failed),
                _hook(kinds.AgentMessage, self.to_platform.message_failed),
            ]
        )
