"""Whether CXone holds a conversation for ended (contract §3.6).

An ended conversation is a contact that is `closed`, `resolved` or `trashed`, or a thread that
takes no more messages (`canAddMoreMessages: false`). These ask DE and write nothing: the
lifecycle's poll and the delivery of a customer message decide what follows.
"""

from __future__ import annotations

import asyncio

from byoc.cxone import ENDED_CONTACT_STATUSES, DeClient


async def why_ended(de: DeClient, channel_id: str, thread_id: str, contact_id: str) -> str | None:
    """Why CXone holds the conversation for ended, or None while it is open: two DE calls
    (`GET /contacts/{id}`, `GET /threads?…`), made together."""
    contact, threads = await asyncio.gather(
        de.get_contact(contact_id),
        de.list_threads(channel_id=channel_id, thread_id_on_external_platform=thread_id),
        return_exceptions=True,  # both answers awaited: neither call is left running
    )
    if isinstance(contact, BaseException):
        raise contact
    if isinstance(threads, BaseException):
        raise threads
    if contact.status in ENDED_CONTACT_STATUSES:
        return f"contact {contact.status}"
    if any(not thread.can_add_more_messages for thread in threads):
        return "thread closed"
    return None


async def contact_ended(de: DeClient, contact_id: str) -> str | None:
    """The status of `contact_id` when it has ended, else None: one DE call."""
    contact = await de.get_contact(contact_id)
    return contact.status if contact.status in ENDED_CONTACT_STATUSES else None
