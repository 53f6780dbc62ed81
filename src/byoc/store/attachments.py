"""Uploaded attachments: files a customer sent, served back to CXone by URL; the storage
quotas of anonymous uploads and the sweep of uploads no message carried.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select, update

from byoc.store import schema as t
from byoc.store.records import StoredAttachment


def insert_attachment(conn: Connection, attachment: StoredAttachment, data: bytes) -> None:
    values = {k: getattr(attachment, k) for k in StoredAttachment.__dataclass_fields__}
    conn.execute(insert(t.attachments).values(**values, data=data))


def get_attachment(
    conn: Connection, attachment_id: str, *, with_data: bool = False
) -> tuple[StoredAttachment, bytes | None] | None:
    columns = [t.attachments.c[k] for k in StoredAttachment.__dataclass_fields__]
    if with_data:
        columns.append(t.attachments.c.data)
    query = select(*columns).where(t.attachments.c.id == attachment_id)
    row = conn.execute(query).first()
    if row is None:
        return None
    m = row._mapping
    attachment = StoredAttachment(**{k: m[k] for k in StoredAttachment.__dataclass_fields__})
    return attachment, (bytes(m["data"]) if with_data else None)


_A = t.attachments


def anonymous_upload_bytes(
    conn: Connection,
    *,
    since: int,
    channel_id: str,
    customer_id: str,
    address: str,
) -> tuple[int, int, int]:
    """Bytes anonymous visitors uploaded since `since` (ms): by this customer, from this
    address, and to this channel."""

    def total(where: ColumnElement[bool]) -> int:
        query = select(func.coalesce(func.sum(_A.c.size), 0)).where(
            _A.c.anonymous_from.is_not(None), _A.c.created_at >= since, where
        )
        return int(conn.execute(query).scalar_one())

    return (
        total(_A.c.customer_id == customer_id),
        total(_A.c.anonymous_from == address),
        total(_A.c.channel_id == channel_id),
    )


def mark_referenced(
    conn: Connection, attachment_ids: Sequence[str], customer_id: str, at: int
) -> bool:
    """A message of `customer_id` carries these uploads of theirs (the first such message's
    time is kept); False when one of them is not (or no longer) there. Every named row is
    written, so locked until the commit: a purge or a sweep deleting one meanwhile either
    waits for the message, or has deleted it before the message marks it."""
    wanted = set(attachment_ids)
    if not wanted:
        return True
    marked = conn.execute(
        update(_A)
        .where(_A.c.id.in_(sorted(wanted)), _A.c.customer_id == customer_id)
        .values(referenced_at=func.coalesce(_A.c.referenced_at, at))
    )
    return marked.rowcount == len(wanted)


def delete_unreferenced(conn: Connection, *, created_before: int, limit: int) -> int:
    """Delete up to `limit` uploads that no message carried, oldest first; how many went."""
    oldest = (
        select(_A.c.id)
        .where(_A.c.referenced_at.is_(None), _A.c.created_at < created_before)
        .order_by(_A.c.created_at)
        .limit(limit)
    )
    ids = [row[0] for row in conn.execute(oldest)]
    if ids:
        conn.execute(delete(_A).where(_A.c.id.in_(ids), _A.c.referenced_at.is_(None)))
    return len(ids)
