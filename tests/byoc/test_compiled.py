"""The fast path's prebuilt statements give what SQLAlchemy gives for the same statement.

`byoc.store.compiled.execute` compiles each prebuilt statement once and runs it straight on
the driver: the `sqlite3` connection, or asyncpg inside `run_sync`. Every prebuilt statement of
the store and the outbox runs here on the same data in SQLite and in PostgreSQL, each time in a
transaction that is rolled back afterwards: once through `Connection.execute` (SQLAlchemy) and
twice through `execute`. The rows it returns, the rows it changes and what every table holds
afterwards must be the same. Driver errors must become the store errors SQLAlchemy's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, create_engine, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from byoc.outbox import rows as outbox_rows
from byoc.store import (
    Database,
    DuplicateError,
    ReferenceChanged,
    StoreError,
    channels,
    conversations,
    customers,
    dialect,
    locks,
    message_intake,
    messages,
    tenants,
)
from byoc.store import schema as t
from byoc.store.compiled import _POSTGRESQL, _SQLITE, RawResult, _compiled, batched, execute
from byoc.store.migrations import upgrade
from byoc.store.records import Channel, Conversation, Customer, Message, Tenant
from tests.support.postgres import fresh_database

MODULES: list[ModuleType] = [
    tenants,
    channels,
    customers,
    conversations,
    message_intake,
    messages,
    locks,
    outbox_rows,
]
NOW = 1_700_000_000_000
LATER = 10**14  # after the outbox rows the test data enqueues now
T = TypeVar("T")

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
# A customer's message taken at once: "Ada" as stored, nothing else given.
TAKE = {
    "of_channel": "chat_1",
    "of_customer": "ext-1",
    "at": NOW + 6,
    **{"given_" + name: None for name in message_intake.PROFILE_COLUMNS},
    "given_first_name": "Ada",
}
PARAMS: dict[str, dict[str, Any]] = {
    "tenants._GET_TENANT": {"id": "default"},
    "channels._GET_CHANNEL": {"id": "chat_1"},
    "customers._GET_CUSTOMER": {"id": "cus_1"},
    "customers._FIND_CUSTOMER": {"channel_id": "chat_1", "external_id": "ext-1"},
    "conversations._GET_CONVERSATION": {"id": "thr_1"},
    "conversations._GET_CONVERSATION_AND_CUSTOMER": {"id": "thr_1"},
    "conversations._LATEST_CONVERSATION": {"customer_id": "cus_1"},
    "conversations._LATEST_OPEN_CONVERSATION": {"customer_id": "cus_1"},
    "conversations._CUSTOMER_AND_THREAD": {
        "channel_id": "chat_1",
        "external_id": "ext-1",
        "thread_id": "thr_1",
    },
    "conversations._CUSTOMER_AND_LATEST_OPEN": {"channel_id": "chat_1", "external_id": "ext-1"},
    "conversations._NEXT_SEQ": {"conversation_id": "thr_1"},
    "conversations._NEXT_SEQ_AND_IDLE": {"conversation_id": "thr_1", "idle_deadline": NOW + 1},
    "conversations._NEXT_SEQ_FOR_REPLY": {
        "conversation_id": "thr_1",
        "in_channel": "chat_1",
        "idle_deadline": NOW + 5,
    },
    "conversations._NEXT_SEQ_FOR_REPLY_LOCKING": {
        "conversation_id": "thr_1",
        "in_channel": "chat_1",
        "idle_deadline": NOW + 5,
        "lane": "platform:thr_1",
    },
    "conversations._NEXT_SEQ_LOCKING": {"conversation_id": "thr_1", "lane": "cxone:thr_1"},
    "conversations._NEXT_SEQ_AND_IDLE_LOCKING": {
        "conversation_id": "thr_1",
        "idle_deadline": NOW + 1,
        "lane": "platform:thr_1",
    },
    "conversations._NEXT_SEQ_AND_CUSTOMER_ACTIVE_LOCKING": {
        "conversation_id": "thr_1",
        "at": NOW + 4,
        "lane": "cxone:thr_1",
    },
    "conversations._NEXT_SEQ_AND_CUSTOMER_ACTIVE": {"conversation_id": "thr_1", "at": NOW + 4},
    "conversations._CUSTOMER_ACTIVE": {
        "conversation_id": "thr_1",
        "at": NOW + 2,
        "restart": NOW + 9,
    },
    "conversations._CHECKED_IN_CXONE": {"conversation_id": "thr_1", "at": NOW + 3},
    "message_intake._FOR_THREAD": {**TAKE, "named_thread": "thr_1"},
    "message_intake._FOR_THREAD_LOCKING": {**TAKE, "named_thread": "thr_1", "lane_prefix": "c:"},
    "message_intake._FOR_LATEST": TAKE,
    "message_intake._FOR_LATEST_LOCKING": {**TAKE, "lane_prefix": "cxone:"},
    "messages._INSERT_MESSAGE": MESSAGE,
    "messages._GET_MESSAGE": {"id": "msg_1"},
    "messages._FIND_MESSAGE_BY_PLATFORM_ID": {"channel_id": "chat_1", "platform_message_id": "p-1"},
    "messages._FIND_MESSAGE_BY_DE_ID": {"channel_id": "chat_1", "de_message_id": "de-2"},
    "messages._SET_MESSAGE_STATUS": {"message_id": "msg_1", "status": "sent"},
    "messages._SET_STATUS_OF_MANY": {
        "ids_json": '["msg_0", "msg_2"]',
        "status": "sent",
        "was": "pending",
    },
    "messages._ADVANCE_STATUS": {
        "message_id": "msg_1",
        "status": "failed",
        "from_json": '["queued"]',
    },
    "locks._WAIT_FOR_OTHERS": {"lane": "opening:cus_1"},
    "messages._GET_MESSAGES_IN_CONTEXT": {"ids_json": '["msg_0", "msg_2", "msg_9"]'},
    "messages._LIST_MESSAGES": {"conversation_id": "thr_1", "after_seq": 0, "limit": 10},
    "rows._ENQUEUE": OUTBOX_ROW,
    "rows._ENQUEUE_AFTER_LANE_LOCK": OUTBOX_ROW,
    "rows._LANE_HEADS": {},
    "rows._DUE": {"now": LATER, "limit": 10},
    "rows._CLAIM_DUE": {"now": LATER, "limit": 10, **CLAIM},
    "rows._COMPLETE": {"ids_json": "[2, 3]"},
    "rows._ENQUEUE_CLAIMED": {**OUTBOX_ROW, "lane": "t:new", **CLAIM},
    "rows._ENQUEUE_CLAIMED_WITH_MESSAGE": {
        **OUTBOX_ROW,
        "lane": "t:new",
        **CLAIM,
        **{"message_" + name: value for name, value in MESSAGE.items()},
    },
}
# Statements of one database only.
ONLY_ON = {
    "message_intake._FOR_THREAD": dialect.POSTGRESQL,
    "message_intake._FOR_THREAD_LOCKING": dialect.POSTGRESQL,
    "message_intake._FOR_LATEST": dialect.POSTGRESQL,
    "message_intake._FOR_LATEST_LOCKING": dialect.POSTGRESQL,
    "rows._ENQUEUE_AFTER_LANE_LOCK": dialect.POSTGRESQL,
    "conversations._NEXT_SEQ_FOR_REPLY": dialect.POSTGRESQL,
    "conversations._NEXT_SEQ_FOR_REPLY_LOCKING": dialect.POSTGRESQL,
    "conversations._NEXT_SEQ_LOCKING": dialect.POSTGRESQL,
    "locks._WAIT_FOR_OTHERS": dialect.POSTGRESQL,
    "conversations._NEXT_SEQ_AND_IDLE_LOCKING": dialect.POSTGRESQL,
    "conversations._NEXT_SEQ_AND_CUSTOMER_ACTIVE_LOCKING": dialect.POSTGRESQL,
    "rows._ENQUEUE_CLAIMED_WITH_MESSAGE": dialect.POSTGRESQL,
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
                    {"type": "TEXT"}, [], None, f"p-{seq}", f"de-{seq}",
                    "queued" if seq == 1 else "pending", NOW + seq,
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


class Backend:
    """A database holding the test data; `run(fn)` runs `fn(conn)` in a transaction that is
    rolled back afterwards, on the connection the store's fast path runs on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = dialect.backend(url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        file_url = dialect.embedded_file_url(url)
        if file_url is not None:
            # The engine the store's writer and reader threads use.
            self._engine = create_engine(file_url, **dialect.embedded_engine_options())
            dialect.prepare_engine(self._engine, url)
        else:
            # Asyncpg under `run_sync`, as `Database` runs it; one loop for the module.
            self._loop = asyncio.new_event_loop()
            self._async_engine = create_async_engine(dialect.async_url(url))

    def run(self, fn: Callable[[Connection], T]) -> T:
        if self._engine is not None:
            with self._engine.connect() as conn:
                transaction = conn.begin()
                try:
                    return fn(conn)
                finally:
                    transaction.rollback()
        assert self._loop is not None
        assert self._async_engine is not None
        engine = self._async_engine

        async def run() -> T:
            async with engine.connect() as conn:
                transaction = await conn.begin()
                try:
                    return await conn.run_sync(fn)
                finally:
                    await transaction.rollback()

        return self._loop.run_until_complete(run())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._loop is not None and self._async_engine is not None:
            self._loop.run_until_complete(self._async_engine.dispose())
            self._loop.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    # A database of its own each time: the tests of one backend need not run in one stretch
    # (pytest-xdist hands them out one by one), and each time this fills a database afresh.
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{Path(tmp_path_factory.mktemp('compiled')) / 'store.db'}"
        else:
            url = stack.enter_context(fresh_database())
        asyncio.run(_fill(url))
        opened = Backend(url)
        yield opened
        opened.close()


Tables = dict[str, list[tuple[Any, ...]]]


def _everything(conn: Connection) -> Tables:
    return {
        name: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {name} ORDER BY 1"))]
        for name in t.metadata.tables
    }


def _run(
    backend: Backend, statement: Executable, params: dict[str, Any], *, driver: bool
) -> tuple[list[dict[str, Any]], int, Tables]:
    def run(conn: Connection) -> tuple[list[dict[str, Any]], int, Tables]:
        if backend.name == dialect.POSTGRESQL:
            # A sequence does not roll back: each run starts it where the data leaves it.
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('outbox', 'id'), max(id)) FROM outbox"
            )
        if driver:
            result = execute(conn, statement, params)
            assert isinstance(result, RawResult)  # the fast path ran, not its fallback
            rows = [dict(row._mapping) for row in result]
        else:
            result = conn.execute(statement, params)
            rows = [dict(row._mapping) for row in result] if result.returns_rows else []
        return rows, result.rowcount, _everything(conn)

    return backend.run(run)


@pytest.mark.parametrize(
    ("name", "statement"), [pytest.param(*case, id=case[0]) for case in prebuilt()]
)
def test_prebuilt_statement_matches_sqlalchemy(
    backend: Backend, name: str, statement: Executable
) -> None:
    if ONLY_ON.get(name, backend.name) != backend.name:
        pytest.skip(f"a statement for {ONLY_ON[name]} only")
    params = PARAMS[name]
    before = backend.run(_everything)
    through_sqlalchemy = _run(backend, statement, params, driver=False)
    # Twice on the driver: the second run takes the SQL compiled by the first.
    for _ in range(2):
        through_driver = _run(backend, statement, params, driver=True)
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
    assert backend.run(_everything) == before  # each run was rolled back


@pytest.mark.parametrize("driver", [False, True])
def test_an_id_list_parameter_selects_exactly_its_ids(backend: Backend, driver: bool) -> None:
    remaining = select(t.outbox.c.id).order_by(t.outbox.c.id)

    def complete(conn: Connection) -> list[int]:
        params = {"ids_json": json.dumps([1, 3])}
        if driver:
            execute(conn, outbox_rows._COMPLETE, params)
        else:
            conn.execute(outbox_rows._COMPLETE, params)
        return list(conn.execute(remaining).scalars())

    assert backend.run(complete) == [2]


@pytest.mark.parametrize("driver", [False, True])
def test_a_claim_takes_each_lanes_head_once(backend: Backend, driver: bool) -> None:
    """Rows 1 and 2 share a lane, row 3 has its own: the claim takes 1 and 3, and nothing
    more until they are settled."""

    def claim(conn: Connection) -> list[list[int]]:
        rounds = []
        for _ in range(2):
            found = (
                outbox_rows.claim_due(conn, owner="w1", limit=10, lease_ms=60_000, now=LATER)
                if driver
                else [
                    row.id
                    for row in conn.execute(
                        outbox_rows._CLAIM_DUE,
                        {"now": LATER, "limit": 10, "claimed_until": LATER + 60_000, "owner": "w1"},
                    )
                ]
            )
            rounds.append(sorted(r if isinstance(r, int) else r.id for r in found))
        return rounds

    assert backend.run(claim) == [[1, 3], []]


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("rows._CLAIM_DUE", "outbox"),
        ("rows._COMPLETE", "outbox"),
        ("messages._SET_STATUS_OF_MANY", "messages"),
    ],
)
def test_an_id_list_is_looked_up_by_primary_key(backend: Backend, name: str, table: str) -> None:
    """Not scanned: claiming or settling rows must not cost in proportion to the backlog."""
    if backend.name != dialect.SQLITE:
        pytest.skip("reads SQLite's query plan")
    params = PARAMS[name]
    compiled = _compiled(_SQLITE, dialect.SQLITE_DRIVER_DIALECT, dict(prebuilt())[name], params)

    def explain(conn: Connection) -> list[str]:
        sql = f"EXPLAIN QUERY PLAN {compiled.sql}"
        return [str(row[-1]) for row in conn.exec_driver_sql(sql, {**compiled.literals, **params})]

    plan = backend.run(explain)
    steps = [step for step in plan if table in step]
    assert steps, plan
    assert all(step.startswith("SEARCH") for step in steps), plan


@pytest.mark.parametrize(
    "name", ["messages._SET_STATUS_OF_MANY", "messages._GET_MESSAGES_IN_CONTEXT"]
)
def test_a_message_id_list_is_looked_up_by_primary_key_on_postgresql(
    backend: Backend, name: str
) -> None:
    """A settle pass's status update and a pass's delivery reads look their messages up by
    key: a scan of the whole table cost each pass in proportion to every message ever kept."""
    if backend.name != dialect.POSTGRESQL:
        pytest.skip("reads PostgreSQL's query plan")
    params = PARAMS[name]

    def explain(conn: Connection) -> str:
        # Enough messages, with fresh statistics, that the planner weighs a scan against the key.
        conn.exec_driver_sql(
            "INSERT INTO messages (id, channel_id, conversation_id, seq, direction, sender,"
            " content, status, created_at) SELECT 'bulk_' || n, 'chat_1', 'thr_1', 100 + n,"
            " 'out', 'agent', '{}', 'sent', 0 FROM generate_series(1, 5000) AS n"
        )
        conn.exec_driver_sql("ANALYZE messages")
        # The SQL the store sends, with its arguments in order (as `compiled._on_asyncpg`).
        compiled = _compiled(_POSTGRESQL, conn.dialect, dict(prebuilt())[name], params)
        values = {**compiled.literals, **params}
        args = tuple(values[key] for key in compiled.names)
        found = conn.exec_driver_sql("EXPLAIN " + compiled.sql, args)
        return "\n".join(str(row[0]) for row in found)

    plan = backend.run(explain)
    assert "messages_pkey" in plan, plan
    assert "Seq Scan on messages" not in plan, plan


@pytest.mark.parametrize("driver", [False, True])
def test_a_text_id_list_sets_exactly_its_messages(backend: Backend, driver: bool) -> None:
    statuses = select(t.messages.c.id, t.messages.c.status).order_by(t.messages.c.id)

    def mark(conn: Connection) -> list[tuple[str, str]]:
        ids = json.dumps(["msg_0", "msg_2", "msg_none"])
        params = {"ids_json": ids, "status": "sent", "was": "pending"}
        if driver:
            execute(conn, messages._SET_STATUS_OF_MANY, params)
        else:
            conn.execute(messages._SET_STATUS_OF_MANY, params)
        return [(str(id_), str(status)) for id_, status in conn.execute(statuses)]

    assert backend.run(mark) == [("msg_0", "sent"), ("msg_1", "queued"), ("msg_2", "sent")]


@pytest.mark.parametrize("driver", [False, True])
@pytest.mark.parametrize(
    ("change", "error", "kind"),
    [
        pytest.param({"id": "msg_1"}, "duplicate key", DuplicateError, id="duplicate"),
        pytest.param(
            {"conversation_id": "thr_gone"},
            "referenced row changed",
            ReferenceChanged,
            id="missing-reference",
        ),
    ],
)
def test_a_refused_insert_is_told_apart_on_either_path(
    backend: Backend, driver: bool, change: dict[str, str], error: str, kind: type[StoreError]
) -> None:
    """A unique key's refusal is a `DuplicateError`, a foreign key's (the conversation deleted
    meanwhile, say) a `ReferenceChanged`: after either, a message's transaction runs again
    (`conversations.once`), and the two are not taken for each other."""

    def insert(conn: Connection) -> None:
        params = {**MESSAGE, **change}
        if driver:
            execute(conn, messages._INSERT_MESSAGE, params)
        else:
            conn.execute(messages._INSERT_MESSAGE, params)

    async def run() -> None:
        db = Database(backend.url)
        try:
            with pytest.raises(StoreError, match=error) as caught:
                await db.run_write(insert)
            assert type(caught.value) is kind
            # and the connection it failed on serves the next transaction
            assert await db.run_read(messages.get_message, "msg_1") is not None
        finally:
            await db.close()

    asyncio.run(run())


def test_a_statement_on_the_driver_first_is_inside_the_transaction(backend: Backend) -> None:
    """The driver runs the transaction's first statement: what it wrote is rolled back with
    the transaction, and committed with it."""

    class Undo(Exception):
        pass

    def set_status(status: str, *, fail: bool) -> Callable[[Connection], None]:
        def write(conn: Connection) -> None:
            execute(conn, messages._SET_MESSAGE_STATUS, {"message_id": "msg_0", "status": status})
            if fail:
                raise Undo

        return write

    async def run() -> list[str]:
        db = Database(backend.url)
        seen = []
        try:
            with pytest.raises(Undo):
                await db.run_write(set_status("undone", fail=True))
            seen.append(await db.run_read(messages.get_message, "msg_0"))
            await db.run_write(set_status("kept", fail=False))
            seen.append(await db.run_read(messages.get_message, "msg_0"))
            await db.run_write(set_status("pending", fail=False))
        finally:
            await db.close()
        return [message.status for message in seen if message is not None]

    assert asyncio.run(run()) == ["pending", "kept"]


def test_a_message_is_found_with_its_channel_and_without_it_once_deleted(
    backend: Backend,
) -> None:
    def read(conn: Connection) -> list[str | None]:
        seen = []
        for _ in range(2):
            found = messages.get_messages_in_context(conn, ["msg_1"]).get("msg_1")
            assert found is not None
            assert found[0].id == "msg_1"
            seen.append(found[3].id if found[3] is not None else None)
            channels.delete_channel(conn, "chat_1")
        return seen

    assert backend.run(read) == ["chat_1", None]


def test_held_statements_leave_what_running_each_leaves(backend: Backend) -> None:
    """`batched` holds back the statements that return nothing, and runs each one's
    executions together before anything reads: a read inside the block, through the fast path
    or through SQLAlchemy, sees every write made before it, and the tables end as they end
    when each statement runs at once. The executions of one statement keep their order."""

    def writes(conn: Connection, round_: int) -> None:
        for n, status in ((0, "first"), (1, "sent"), (0, "second"), (2, "sent")):
            messages.set_message_status(conn, f"msg_{n}", f"{status}-{round_}")
            conversations.mark_checked_in_cxone(conn, f"thr_{n % 2}", NOW + 10 * round_ + n)

    def run(conn: Connection) -> tuple[str | None, list[str]]:
        writes(conn, 1)
        found = messages.get_message(conn, "msg_2")  # the fast path, returning rows
        writes(conn, 2)
        statuses = conn.execute(select(t.messages.c.status).order_by(t.messages.c.id))
        return (found.status if found else None), list(statuses.scalars())

    def unbatched(conn: Connection) -> tuple[tuple[str | None, list[str]], Tables]:
        return run(conn), _everything(conn)

    def held(conn: Connection) -> tuple[tuple[str | None, list[str]], Tables]:
        with batched(conn):
            seen = run(conn)
        return seen, _everything(conn)

    expected = backend.run(unbatched)
    assert expected[0] == ("sent-1", ["second-2", "sent-2", "sent-2"])
    assert backend.run(held) == expected
