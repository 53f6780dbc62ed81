"""Customers: one per platform user of a channel, with their profile and opt-out.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from byoc.store import schema as t
from byoc.store.compiled import execute
from byoc.store.db import now_ms
from byoc.store.records import Customer, dumps, loads_or_none


def customer_from_row(row: Row[Any], prefix: str = "") -> Customer:
    m = row._mapping
    return Customer(
        id=m[prefix + "id"],
        channel_id=m[prefix + "channel_id"],
        external_id=m[prefix + "external_id"],
        first_name=m[prefix + "first_name"],
        last_name=m[prefix + "last_name"],
        nickname=m[prefix + "nickname"],
        image=m[prefix + "image"],
        custom_fields=loads_or_none(m[prefix + "custom_fields"]),
        opted_out=bool(m[prefix + "opted_out"]),
    )


_GET_CUSTOMER = select(t.customers).where(t.customers.c.id == bindparam("id"))


def get_customer(conn: Connection, customer_id: str) -> Customer | None:
    row = execute(conn, _GET_CUSTOMER, {"id": customer_id}).first()
    return customer_from_row(row) if row else None


_FIND_CUSTOMER = select(t.customers).where(
    t.customers.c.channel_id == bindparam("channel_id"),
    t.customers.c.external_id == bindparam("external_id"),
)


def find_customer(conn: Connection, channel_id: str, external_id: str) -> Customer | None:
    params = {"channel_id": channel_id, "external_id": external_id}
    row = execute(conn, _FIND_CUSTOMER, params).first()
    return customer_from_row(row) if row else None


def save_customer(conn: Connection, customer: Customer, *, is_new: bool) -> None:
    values = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "nickname": customer.nickname,
        "image": customer.image,
        "custom_fields": None if customer.custom_fields is None else dumps(customer.custom_fields),
    }
    if is_new:
        conn.execute(
            insert(t.customers).values(
                id=customer.id,
                channel_id=customer.channel_id,
                external_id=customer.external_id,
                created_at=now_ms(),
                **values,
            )
        )
    else:
        conn.execute(update(t.customers).where(t.customers.c.id == customer.id).values(**values))


def set_opted_out(conn: Connection, customer_id: str, opted_out: bool) -> None:
    conn.execute(
        update(t.customers).where(t.customers.c.id == customer_id).values(opted_out=int(opted_out))
    )
