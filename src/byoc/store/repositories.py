"""The queries of `byoc.store.queries` on an `AsyncConnection`, for code that holds one.

Each function here is the synchronous query run through `AsyncConnection.run_sync`, so the
SQL exists once. Hot paths call `byoc.store.queries` inside one transaction function instead.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from byoc.store import queries as q

P = ParamSpec("P")
R = TypeVar("R")


def on_async(
    fn: Callable[Concatenate[Connection, P], R],
) -> Callable[Concatenate[AsyncConnection, P], Coroutine[Any, Any, R]]:
    """`fn` as a coroutine function on an `AsyncConnection` (one greenlet hop per call)."""

    async def run(conn: AsyncConnection, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await conn.run_sync(fn, *args, **kwargs)

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


upsert_tenant = on_async(q.upsert_tenant)
get_tenant = on_async(q.get_tenant)
list_tenants = on_async(q.list_tenants)
insert_client = on_async(q.insert_client)
get_client = on_async(q.get_client)
list_clients = on_async(q.list_clients)
revoke_client = on_async(q.revoke_client)
insert_channel = on_async(q.insert_channel)
get_channel = on_async(q.get_channel)
list_channels = on_async(q.list_channels)
update_channel = on_async(q.update_channel)
delete_channel = on_async(q.delete_channel)
get_customer = on_async(q.get_customer)
find_customer = on_async(q.find_customer)
save_customer = on_async(q.save_customer)
get_conversation = on_async(q.get_conversation)
find_conversation_by_de_thread = on_async(q.find_conversation_by_de_thread)
latest_conversation = on_async(q.latest_conversation)
insert_conversation = on_async(q.insert_conversation)
next_seq = on_async(q.next_seq)
update_conversation = on_async(q.update_conversation)
insert_message = on_async(q.insert_message)
get_message = on_async(q.get_message)
find_message_by_platform_id = on_async(q.find_message_by_platform_id)
find_message_by_de_id = on_async(q.find_message_by_de_id)
set_message_status = on_async(q.set_message_status)
list_messages = on_async(q.list_messages)
count_rows = on_async(q.count_rows)
insert_attachment = on_async(q.insert_attachment)
get_attachment = on_async(q.get_attachment)
transition_conversation = on_async(q.transition_conversation)
due_conversations = on_async(q.due_conversations)
conversations_to_check = on_async(q.conversations_to_check)
count_pending_timers = on_async(q.count_pending_timers)
set_opted_out = on_async(q.set_opted_out)
