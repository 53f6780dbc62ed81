"""The CXone contact of a thread an agent started (contract §2.3, §3.6).

CXone opens that contact as it calls the reply endpoint, and no answer names it to the
middleware: without it the idle end would close nothing in CXone and the end poll would never
ask about the thread. So the thread's opening queues a lookup (`kinds.FindContact`), ahead of
everything else towards CXone on the thread: `GET /contacts` for the channel and the customer
(by our id and by the platform's, either of which an agent may have addressed), narrowed to the
thread. The id is written only where none is held yet. A contact already ended ends the
conversation here, as the end poll would have.

The lookup heads the thread's lane, so it is worth a few seconds: a contact not listed yet, or
CXone unavailable, is asked about again, at most `FIND_ATTEMPTS` times in all and not once
`GIVE_UP_AFTER_MS` have passed since the thread opened (a CXone that hangs costs a call's
timeout per attempt), and a wait that CXone asks to be longer than `LONGEST_WAIT_SECONDS` is not
waited for. A refusal (4xx) gives up at once. Giving up is quiet, not a dead letter: the thread
learns its contact from the next call that names one, a system message's (idle warning) or a
customer message's create. An agent's close before that call goes unnoticed: DE opens a new
contact for the call, which the thread takes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from byoc.clock import Clock, SystemClock
from byoc.conversations import lifecycle
from byoc.cxone import Contact
from byoc.delivery.common import cxone_call, load
from byoc.outbox import PermanentFailure, RetryLater, kinds
from byoc.outbox.outcome import Outcome, Settled
from byoc.store import Connection, Database, conversations
from byoc.store.records import Conversation, OutboxRow
from byoc.tenancy import TenantClients

log = logging.getLogger(__name__)

# Attempts before the lookup gives up (the backoff between them is the outbox's: 0.25-0.5,
# 0.5-1, 1-2 and 2-4 seconds), and the longest Retry-After it waits for.
FIND_ATTEMPTS = 5
LONGEST_WAIT_SECONDS = 5.0
GIVE_UP_AFTER_MS = 20_000


class ContactFinder:
    def __init__(self, db: Database, tenants: TenantClients, *, clock: Clock | None = None) -> None:
        self._db = db
        self._tenants = tenants
        self._clock: Clock = clock or SystemClock()

    async def find_contact(self, payload: kinds.FindContact, row: OutboxRow) -> Outcome:
        loaded = await load(self._db, conversation_id=payload.conversation_id)
        conversation, channel = loaded.conversation, loaded.channel
        if conversation.de_contact_id is not None:
            return Settled()  # a customer message's create named it first
        age = self._clock.now_ms() - row.created_at
        last = row.attempts + 1 >= FIND_ATTEMPTS or age >= GIVE_UP_AFTER_MS
        customer = loaded.customer
        de = await self._tenants.for_tenant(channel.tenant_id)
        try:
            async with cxone_call(f"contacts of thread {conversation.id}"):
                listed = await de.list_contacts(
                    channel_ids=[channel.id],
                    end_user_ids=sorted({customer.id, customer.external_id}),
                )
        except RetryLater as exc:
            if last or (exc.retry_after or 0) > LONGEST_WAIT_SECONDS:
                return _given_up(conversation, str(exc))
            raise
        except PermanentFailure as exc:  # the key may not list contacts: nothing to retry
            return _given_up(conversation, str(exc))
        contact = thread_contact(listed, conversation)
        if contact is None:
            if last:
                return _given_up(conversation, "CXone lists no contact of it")
            raise RetryLater(f"CXone lists no contact of thread {conversation.id} yet")
        now = self._clock.now_ms()

        def learnt(conn: Connection) -> None:
            if not take_contact(conn, conversation.id, contact.id):
                return  # a create wrote one meanwhile: it is the newer
            if contact.is_ended:
                # The agent closed it already: what the end poll would find (contract §4.5).
                log.info("contact %s of thread %s has ended", contact.id, conversation.id)
                current = conversations.get_conversation(conn, conversation.id)
                if current is not None:
                    lifecycle.end_conversation(conn, current, reason="agent", now=now)
            else:
                conversations.mark_checked_in_cxone(conn, conversation.id, now)

        return Settled(write=learnt)


def take_contact(conn: Connection, conversation_id: str, contact_id: str) -> bool:
    """Write `contact_id` as the conversation's contact if it holds none yet (another call may
    have named one meanwhile); whether it was written."""
    unknown = {"de_contact_id": None}
    return conversations.transition_conversation(
        conn, conversation_id, unknown, de_contact_id=contact_id
    )


def _given_up(conversation: Conversation, why: str) -> Settled:
    log.warning(
        "contact of thread %s not learnt (%s); the next call to CXone that names one will",
        conversation.id,
        why,
    )
    return Settled()


def thread_contact(listed: Sequence[Contact], conversation: Conversation) -> Contact | None:
    """The thread's contact among `listed`: an open one if any, else the newest. A contact is
    the thread's by our thread id, or by CXone's when it names no thread id of ours (one that
    names another conversation is that one's, whatever CXone's thread)."""
    mine = [
        c
        for c in listed
        if c.thread_id_on_external_platform == conversation.id
        or (
            c.thread_id_on_external_platform is None
            and conversation.de_thread_id is not None
            and c.thread_id == conversation.de_thread_id
        )
    ]
    if not mine:
        return None
    return max(mine, key=lambda c: (not c.is_ended, c.created_at or ""))
