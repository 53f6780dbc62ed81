"""The schema as the hand-written migrations before Alembic built it, frozen for upgrade tests.

A verbatim copy of those migrations' DDL (versions 1 to 4) and of their bookkeeping table, so a
test can build a database exactly as a deployment of that time has it and upgrade it in place.
Never edited: it records history, not the current schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from byoc.store import dialect
from byoc.store.db import Database, now_ms


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "tenants, clients, channels, conversations, messages, outbox",
        (
            """CREATE TABLE tenants (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                brand_id BIGINT NOT NULL,
                cxone_tenant_id TEXT NOT NULL,
                business_unit_id BIGINT NOT NULL,
                api_url TEXT NOT NULL,
                token_url TEXT NOT NULL,
                access_key_id TEXT NOT NULL,
                access_key_secret TEXT NOT NULL,
                client_id TEXT NOT NULL,
                client_secret TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )""",
            """CREATE TABLE oauth_clients (
                client_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                secret_hash TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                revoked_at BIGINT
            )""",
            """CREATE TABLE channels (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL REFERENCES tenants(id),
                adapter TEXT NOT NULL,
                name TEXT NOT NULL,
                webhook_url TEXT,
                secret TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                deleted_at BIGINT
            )""",
            """CREATE TABLE customers (
                id TEXT PRIMARY KEY,
                channel_id TEXT NOT NULL REFERENCES channels(id),
                external_id TEXT NOT NULL,
                first_name TEXT,
                last_name TEXT,
                nickname TEXT,
                image TEXT,
                custom_fields TEXT,
                created_at BIGINT NOT NULL,
                UNIQUE (channel_id, external_id)
            )""",
            """CREATE TABLE conversations (
                id TEXT PRIMARY KEY,
                channel_id TEXT NOT NULL REFERENCES channels(id),
                customer_id TEXT NOT NULL REFERENCES customers(id),
                state TEXT NOT NULL,
                origin TEXT NOT NULL,
                de_thread_id TEXT,
                de_contact_id TEXT,
                next_seq BIGINT NOT NULL,
                last_customer_activity_at BIGINT,
                created_at BIGINT NOT NULL,
                ended_at BIGINT,
                ended_reason TEXT
            )""",
            "CREATE INDEX conversations_by_customer ON conversations (customer_id, state)",
            "CREATE INDEX conversations_by_de_thread ON conversations (de_thread_id)",
            """CREATE TABLE messages (
                id TEXT PRIMARY KEY,
                channel_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL REFERENCES conversations(id),
                seq BIGINT NOT NULL,
                direction TEXT NOT NULL,
                sender TEXT NOT NULL,
                text TEXT,
                content TEXT NOT NULL,
                attachments TEXT,
                author TEXT,
                platform_message_id TEXT,
                de_message_id TEXT,
                status TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                UNIQUE (conversation_id, seq),
                UNIQUE (channel_id, platform_message_id),
                UNIQUE (channel_id, de_message_id)
            )""",
            """CREATE TABLE outbox (
                id {pk},
                lane TEXT NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at BIGINT NOT NULL,
                claimed_until BIGINT,
                claimed_by TEXT,
                last_error TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )""",
            "CREATE INDEX outbox_due ON outbox (state, next_attempt_at)",
            "CREATE INDEX outbox_lane ON outbox (lane, state, id)",
        ),
    ),
    Migration(
        2,
        "channel settings, uploaded attachments",
        (
            "ALTER TABLE channels ADD COLUMN settings TEXT",
            """CREATE TABLE attachments (
                id TEXT PRIMARY KEY,
                channel_id TEXT NOT NULL REFERENCES channels(id),
                customer_id TEXT NOT NULL REFERENCES customers(id),
                access_token TEXT NOT NULL,
                friendly_name TEXT NOT NULL,
                mime_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                data {blob} NOT NULL,
                created_at BIGINT NOT NULL
            )""",
        ),
    ),
    Migration(
        3,
        "idle and end-of-conversation bookkeeping, customer opt-out",
        (
            "ALTER TABLE conversations ADD COLUMN idle_deadline BIGINT",
            "ALTER TABLE conversations ADD COLUMN countdown_deadline BIGINT",
            "ALTER TABLE conversations ADD COLUMN de_checked_at BIGINT",
            "CREATE INDEX conversations_idle ON conversations (state, idle_deadline)",
            "CREATE INDEX conversations_countdown ON conversations (state, countdown_deadline)",
            "ALTER TABLE customers ADD COLUMN opted_out INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        4,
        "customers may dismiss an ended conversation",
        ("ALTER TABLE conversations ADD COLUMN dismissed_at BIGINT",),
    ),
)

_DIALECT_WORDS = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"},
    "postgresql": {"pk": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"},
}


async def build_legacy_database(db: Database, up_to: int = 4) -> None:
    """Apply the old migrations 1 to `up_to` as the old `upgrade()` did, bookkeeping included."""
    words = _DIALECT_WORDS[dialect.backend(db.url)]
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
        )
        for migration in MIGRATIONS[:up_to]:
            for statement in migration.statements:
                await conn.execute(text(statement.format(**words)))
            await conn.execute(
                text(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :t)"
                ),
                {"v": migration.version, "n": migration.name, "t": now_ms()},
            )
