"""Channels: the mapping of each DE channel to its tenant, adapter and settings.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from byoc.store import schema as t
from byoc.store.compiled import execute
from byoc.store.db import now_ms
from byoc.store.records import Channel, dumps, loads_or_none


def channel_from_row(row: Row[Any], prefix: str = "") -> Channel:
    m = row._mapping
    values = {k: m[prefix + k] for k in Channel.__dataclass_fields__ if k != "settings"}
    return Channel(**values, settings=loads_or_none(m[prefix + "settings"]) or {})


def insert_channel(conn: Connection, channel: Channel) -> None:
    values = {k: getattr(channel, k) for k in Channel.__dataclass_fields__}
    values["settings"] = dumps(channel.settings) if channel.settings else None
    conn.execute(insert(t.channels).values(**values))


_GET_CHANNEL = select(t.channels).where(
    t.channels.c.id == bindparam("id"), t.channels.c.deleted_at.is_(None)
)


def get_channel(conn: Connection, channel_id: str) -> Channel | None:
    row = execute(conn, _GET_CHANNEL, {"id": channel_id}).first()
    return channel_from_row(row) if row else None


def get_channel_even_deleted(conn: Connection, channel_id: str) -> Channel | None:
    """The channel, also when its mapping was deleted (its customers' data is still held)."""
    row = conn.execute(select(t.channels).where(t.channels.c.id == channel_id)).first()
    return channel_from_row(row) if row else None


def list_channels(conn: Connection) -> list[Channel]:
    query = select(t.channels).where(t.channels.c.deleted_at.is_(None)).order_by(t.channels.c.id)
    return [channel_from_row(r) for r in conn.execute(query)]


def update_channel(conn: Connection, /, channel_id: str, **values: Any) -> None:
    if "settings" in values:
        values["settings"] = dumps(values["settings"]) if values["settings"] else None
    conn.execute(update(t.channels).where(t.channels.c.id == channel_id).values(**values))


def delete_channel(conn: Connection, channel_id: str) -> bool:
    result = conn.execute(
        update(t.channels)
        .where(t.channels.c.id == channel_id, t.channels.c.deleted_at.is_(None))
        .values(deleted_at=now_ms())
    )
    return result.rowcount > 0


def id_ever_used(conn: Connection, channel_id: str) -> bool:
    """Whether a channel with this id is or was mapped: a deleted mapping counts, its
    conversations still point at the id."""
    query = select(t.channels.c.id).where(t.channels.c.id == channel_id)
    return conn.execute(query).first() is not None
