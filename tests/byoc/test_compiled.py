"""The fast path's prebuilt statements give what SQLAlchemy gives for the same statement.

`byoc.store.compiled.execute` compiles each prebuilt statement once and runs it straight on
the `sqlite3` connection. Every prebuilt statement of the store and the outbox runs here twice
on the same SQLite data, each time in a transaction that is rolled back afterwards: once
through `Connection.execute` (SQLAlchemy) and once through `execute`. The rows it returns, the
rows it changes and what every table holds afterwards must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, select, text
from sqlalchemy.sql.base import Executable

from byoc.outbox import rows as outbox_rows
from byoc.store import (
    Database,
    channels,
    conversations,
    customers,
    dialect,
    messages,
    tenants,
)
from byoc.store import schema as t
from byoc.store.compiled import RawResult, _compiled, execute
from byoc.store.migrations import upgrade
from byoc.store.records import Channel, Conversation, Customer, Message, Tenant

MODULES: list[ModuleType] = [tenants, channels, customers, conversations, messages, outbox_rows]
NOW = 1_700_000_000_000
LATER = 10**14  # after the outbox rows the test data enqueues now

MESSAGE = {
    "id": "msg_new",
    "channel_id": "chat_1",
    "conversation_id": "thr_1",
    "seq": 9,
    "direction": "in",
    "sender": "customer",
    "text": "again",
    "content": '{"type":"TEXT"}',
    "attachments": None,
    "author": None,
    "platform_message_id": "p-new",
    "de_message_id": None,
    "status": "pending",
    "created_at": NOW,
}
OUTBOX_ROW = {
    "lane": "t:thr_1",
    "kind": "cxone.message",
    "payload": "{}",
    "state": "pending",
    "attempts": 0,
    "next_attempt_at": NOW,
    "created_at": NOW,
    "updated_at": NOW,
}
CLAIM = {"claimed_until": NOW + 60_000, "owner": "w1"}

# Parameters for each prebuilt statement, chosen so that each one finds or changes rows.
PARAMS: dict[str, dict[str, Any]] = {
    "tenants._GET_TENANT": {"id": "default"},
    "channels._GET_CHANNEL": {"id": "chat_1"},
    "customers._GET_CUSTOMER": {"id": "cus_1"},
    "customers._FIND_CUSTOMER": {"channel_id": "chat_1", "external_id": "ext-1"},
    "conversations._GET_CONVERSATION": {"id": "thr_1"},
    "conversations._GET_CONVERSATION_AND_CUSTOMER": {"id": "thr_1"},
    "conversations._LATEST_CONVERSATION": {"customer_id": "cus_1"},
    "conversations._LATEST_OPEN_CONVERSATION": {"customer_id": "cus_1"},
    "conversations._NEXT_SEQ": {"conversation_id": "thr_1"},
    "conversations._NEXT_SEQ_AND_IDLE": {"conversation_id": "thr_1", "idle_deadline": NOW + 1},
    "conversations._CUSTOMER_ACTIVE": {"conversation_id": "thr_1", "at": NOW + 2},
    "conversations._CHECKED_IN_CXONE": {"conversation_id": "thr_1", "at": NOW + 3},
    "messages._INSERT_MESSAGE": MESSAGE,
    "messages._GET_MESSAGE": {"id": "msg_1"},
    "messages._FIND_MESSAGE_BY_PLATFORM_ID": {"channel_id": "chat_1", "platform_message_id": "p-1"},
    "messages._FIND_MESSAGE_BY_DE_ID": {"channel_id": "chat_1", "de_message_id": "de-2"},
    "messages._SET_MESSAGE_STATUS": {"message_id": "msg_1", "status": "sent"},
    "messages._GET_MESSAGE_IN_CONTEXT": {"id": "msg_2"},
    "messages._LIST_MESSAGES": {"conversation_id": "thr_1", "after_seq": 0, "limit": 10},
    "rows._ENQUEUE": OUTBOX_ROW,
    "rows._LANE_HEADS": {},
    "rows._DUE": {"now": LATER, "limit": 10},
    "rows._DUE_SKIP_LOCKED": {"now": LATER, "limit": 10},
    "rows._CLAIM": {"ids_json": "[1, 3]", **CLAIM},
    "rows._COMPLETE": {"ids_json": "[2, 3]"},
    "rows._CLAIM_IF_HEAD": {"row_id": 1, **CLAIM},
}


def prebuilt() -> Iterator[tuple[str, Executable]]:
    """Every statement built at import in the store and the outbox."""
    for module in MODULES:
        for name, value in vars(module).items():
            if isinstance(value, Executable):
                yield f"{module.__name__.rsplit('.', 1)[1]}.{name}", value


def test_every_prebuilt_statement_is_compared() -> None:
    assert sorted(name for name, _ in prebuilt()) == sorted(PARAMS)


async def _fill(url: str) -> None:
    def fill(conn: Connection) -> None:
        tenants.upsert_tenant(
            conn,
            Tenant("default", "default", 1, "t", 2, "http://a", "http://t", "k", "s", "c", "s"),
        )
        channels.insert_channel(
            conn, Channel("chat_1", "default", "webhook", "Chat", None, "secret", NOW)
        )
        customer = Customer("cus_1", "chat_1", "ext-1", "Ada", None, None, None, None)
        customers.save_customer(conn, customer, is_new=True)
        for number, state in ((0, "ended"), (1, "open")):
            conversations.insert_conversation(
                conn,
                Conversation(
                    f"thr_{number}", "chat_1", "cus_1", state, "customer", None, None, 3,
                    None, NOW + number, None, None,
                ),
            )  # fmt: skip
        for seq in range(3):
            messages.insert_message(
                conn,
                Message(
                    f"msg_{seq}", "chat_1", "thr_1", seq, "in", "customer", f"text {seq}",
                    {"type": "TEXT"}, [], None, f"p-{seq}", f"de-{seq}", "pending", NOW + seq,
                ),
            )  # fmt: skip
        for lane in ("t:thr_1", "t:thr_1", "t:thr_0"):
            outbox_rows.enqueue(
                conn, lane=lane, kind="cxone.message", payload={"lane": lane}, now=NOW
            )

    db = Database(url)
    try:
        await upgrade(db)
        await db.run_write(fill)
    finally:
        await db.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    import asyncio

    url = f"sqlite:///{Path(tmp_path_factory.mktemp('compiled')) / 'store.db'}"
    asyncio.run(_fill(url))
    file_url = dialect.embedded_file_url(url)
    assert file_url is not None
    # The engine the store's writer and reader threads use.
    sync_engine = create_engine(file_url, **dialect.embedded_engine_options())
    dialect.prepare_engine(sync_engine, url)
    yield sync_engine
    sync_engine.dispose()


def _everything(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {name} ORDER BY 1"))]
        for name in t.metadata.tables
    }


def _run(
    engine: Engine, statement: Executable, params: dict[str, Any], *, driver: bool
) -> tuple[list[dict[str, Any]], int, dict[str, list[tuple[Any, ...]]]]:
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            if driver:
                result = execute(conn, statement, params)
                assert isinstance(result, RawResult)  # the fast path ran, not its fallback
                rows = [dict(row._mapping) for row in result]
            else:
                result = conn.execute(statement, params)
                rows = [dict(row._mapping) for row in result] if result.returns_rows else []
            return rows, result.rowcount, _everything(conn)
        finally:
            transaction.rollback()


@pytest.mark.parametrize(
    ("name", "statement"), [pytest.param(*case, id=case[0]) for case in prebuilt()]
)
def test_prebuilt_statement_matches_sqlalchemy(
    engine: Engine, name: str, statement: Executable
) -> None:
    params = PARAMS[name]
    with engine.connect() as conn:
        before = _everything(conn)
    through_sqlalchemy = _run(engine, statement, params, driver=False)
    # Twice on the driver: the second run takes the SQL compiled by the first.
    for _ in range(2):
        through_driver = _run(engine, statement, params, driver=True)
        rows, rowcount, after = through_driver
        assert rows == through_sqlalchemy[0]
        assert after == through_sqlalchemy[2]
        if after == before:  # a query: it must find something, or the comparison says little
            assert rows, f"{name} found nothing in the test data"
        elif rows:  # a change with RETURNING: its rows are what the store reads
            # (not its rowcount: SQLAlchemy reads the driver's before fetching the rows, and
            # `sqlite3` counts them as they are fetched)
            assert len(rows) == rowcount
        else:  # a change: the same number of rows
            assert rowcount == through_sqlalchemy[1]
            assert rowcount > 0
    with engine.connect() as conn:
        assert _everything(conn) == before  # each run was rolled back


@pytest.mark.parametrize("driver", [False, True])
def test_an_id_list_parameter_selects_exactly_its_ids(engine: Engine, driver: bool) -> None:
    claimed = select(t.outbox.c.id).where(t.outbox.c.claimed_by == "w1").order_by(t.outbox.c.id)
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            params = {"ids_json": json.dumps([1, 3]), **CLAIM}
            if driver:
                execute(conn, outbox_rows._CLAIM, params)
            else:
                conn.execute(outbox_rows._CLAIM, params)
            assert list(conn.execute(claimed).scalars()) == [1, 3]
        finally:
            transaction.rollback()


@pytest.mark.parametrize("name", ["rows._CLAIM", "rows._COMPLETE"])
def test_an_id_list_is_looked_up_by_primary_key(engine: Engine, name: str) -> None:
    """Not scanned: claiming or settling rows must not cost in proportion to the backlog."""
    params = PARAMS[name]
    sql, literals = _compiled(dict(prebuilt())[name], params)
    with engine.connect() as conn:
        explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", {**literals, **params})
        plan = [str(row[-1]) for row in explained]
    outbox_steps = [step for step in plan if "outbox" in step]
    assert outbox_steps, plan
    assert all(step.startswith("SEARCH") for step in outbox_steps), plan
