"""The schema's one definition: these tables build the queries and the Alembic revisions.

Every change to a table here comes with a revision in `byoc/store/alembic/versions/` (draft it
with `alembic revision --autogenerate`); the suite fails while the two disagree. Timestamps are
integer milliseconds since the epoch, JSON is stored as text.

Unique and foreign-key constraints are left unnamed, as the databases created before Alembic
have them: PostgreSQL gives both the same deterministic names (`messages_conversation_id_seq_key`,
`channels_tenant_id_fkey`), so old and new databases match and a revision can name what it drops.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from byoc.store import dialect

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("brand_id", BigInteger, nullable=False),
    Column("cxone_tenant_id", Text, nullable=False),
    Column("business_unit_id", BigInteger, nullable=False),
    Column("api_url", Text, nullable=False),
    Column("token_url", Text, nullable=False),
    Column("access_key_id", Text, nullable=False),
    Column("access_key_secret", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("client_secret", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    # No foreign key: the default tenant's row is written from the settings at start-up, after
    # the migrations, and the command line checks the tenant when it creates a client.
    Column("tenant_id", Text, nullable=False),
)

channels = Table(
    "channels",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, ForeignKey("tenants.id"), nullable=False),
    Column("adapter", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("webhook_url", Text),
    Column("secret", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger),
    Column("settings", Text),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel_id", Text, ForeignKey("channels.id"), nullable=False),
    Column("customer_id", Text, ForeignKey("customers.id"), nullable=False),
    Column("access_token", Text, nullable=False),
    Column("friendly_name", Text, nullable=False),
    Column("mime_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # The client address of an anonymous visitor's upload, for its storage quota.
    Column("anonymous_from", Text),
    # When a message first carried the upload; one never carried is swept after a grace.
    Column("referenced_at", BigInteger),
    Index("attachments_anonymous_from", "anonymous_from", "created_at"),
    Index("attachments_channel", "channel_id", "created_at"),
    Index("attachments_customer", "customer_id", "created_at"),
    Index("attachments_unreferenced", "referenced_at", "created_at"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel_id", Text, ForeignKey("channels.id"), nullable=False),
    Column("external_id", Text, nullable=False),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("nickname", Text),
    Column("image", Text),
    Column("custom_fields", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("opted_out", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("channel_id", "external_id"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel_id", Text, ForeignKey("channels.id"), nullable=False),
    Column("customer_id", Text, ForeignKey("customers.id"), nullable=False),
    Column("state", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("de_thread_id", Text),
    Column("de_contact_id", Text),
    Column("next_seq", BigInteger, nullable=False),
    Column("last_customer_activity_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    Column("ended_reason", Text),
    Column("idle_deadline", BigInteger),
    Column("countdown_deadline", BigInteger),
    Column("de_checked_at", BigInteger),
    Column("dismissed_at", BigInteger),
    # The background end poll leaves the conversation alone until then: CXone could not be
    # asked about it (`lifecycle.check_agent_ended`). Not `de_checked_at`: nothing was learnt.
    Column("de_poll_after", BigInteger),
    # When the retention purge deleted the ended conversation's messages and attachments; the
    # row itself stays, without content (`byoc.conversations.retention`).
    Column("purged_at", BigInteger),
    Index("conversations_by_customer", "customer_id", "state"),
    Index("conversations_by_de_thread", "de_thread_id"),
    Index("conversations_idle", "state", "idle_deadline"),
    Index("conversations_countdown", "state", "countdown_deadline"),
    Index("conversations_retention", "state", "purged_at", "ended_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel_id", Text, nullable=False),
    Column("conversation_id", Text, ForeignKey("conversations.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("direction", Text, nullable=False),
    Column("sender", Text, nullable=False),
    Column("text", Text),
    Column("content", Text, nullable=False),
    Column("attachments", Text),
    Column("author", Text),
    Column("platform_message_id", Text),
    Column("de_message_id", Text),
    Column("status", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("conversation_id", "seq"),
    UniqueConstraint("channel_id", "platform_message_id"),
    UniqueConstraint("channel_id", "de_message_id"),
)

outbox = Table(
    "outbox",
    metadata,
    # SQLite's AUTOINCREMENT needs the exact type INTEGER; it never reuses an id, so a row's
    # id orders rows within a lane on both dialects.
    Column(
        "id",
        dialect.autoincrement_bigint(),
        primary_key=True,
        autoincrement=True,
    ),
    Column("lane", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger),
    Column("claimed_by", Text),
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("outbox_due", "state", "next_attempt_at"),
    Index("outbox_lane", "lane", "state", "id"),
    sqlite_autoincrement=True,
)
