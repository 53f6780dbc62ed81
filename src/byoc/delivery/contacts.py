"""The CXone contact of a thread an agent started (contract §2.3, §3.6).

CXone opens that contact as it calls the reply endpoint, and no answer names it to the
middleware: without it the idle end would close nothing in CXone and the end poll would never
ask about the thread. So the thread's opening queues a lookup (`kinds.FindContact`), ahead of
everything else towards CXone on the thread: `GET /contacts` for the channel and the customer,
narrowed to the thread. A contact not listed yet is asked for again a few times; after that
the lookup gives up, and the first customer message's create names the contact instead.

The id is written only where none is held yet (a create may have learnt it first). A contact
already ended ends the conversation here, as the end poll would have.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from byoc.clock import Clock, SystemClock
from byoc.conversations import lifecycle
from byoc.cxone import Contact
from byoc.delivery.common import cxone_call, load
from byoc.outbox import RetryLater, kinds
from byoc.outbox.outcome import Outcome, Settled
from byoc.store import Connection, Database, conversations
from byoc.store.records import Conversation, OutboxRow
from byoc.tenancy import TenantClients

log = logging.getLogger(__name__)

# Attempts at a contact that CXone does not list yet, before the lookup gives up (the backoff
# between them is the outbox's: about 0.5, 1, 2 and 4 seconds).
FIND_ATTEMPTS = 5


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
        de = await self._tenants.for_tenant(channel.tenant_id)
        async with cxone_call(f"contacts of thread {conversation.id}"):
            listed = await de.list_contacts(
                channel_ids=[channel.id], end_user_ids=[loaded.customer.id]
            )
        contact = thread_contact(listed, conversation)
        if contact is None:
            if row.attempts + 1 < FIND_ATTEMPTS:
                raise RetryLater(f"CXone lists no contact of thread {conversation.id} yet")
            log.warning(
                "CXone listed no contact of thread %s after %d attempts; the first customer"
                " message will name it",
                conversation.id,
                FIND_ATTEMPTS,
            )
            return Settled()
        now = self._clock.now_ms()

        def learnt(conn: Connection) -> None:
            if not conversations.transition_conversation(
                conn, conversation.id, {"de_contact_id": None}, de_contact_id=contact.id
            ):
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


def thread_contact(listed: Sequence[Contact], conversation: Conversation) -> Contact | None:
    """The thread's contact among `listed`: an open one if any, else the newest."""
    mine = [
        c
        for c in listed
        if c.thread_id_on_external_platform == conversation.id
        or (conversation.de_thread_id is not None and c.thread_id == conversation.de_thread_id)
    ]
    if not mine:
        return None
    return max(mine, key=lambda c: (not c.is_ended, c.created_at or ""))
