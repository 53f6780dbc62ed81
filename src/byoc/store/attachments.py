"""Uploaded attachments: files a customer sent, served back to CXone by URL.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

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
