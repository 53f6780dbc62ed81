"""Table handles for building queries; the DDL itself lives in `migrations`."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, Table, Text

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text),
    Column("brand_id", BigInteger),
    Column("cxone_tenant_id", Text),
    Column("business_unit_id", BigInteger),
    Column("api_url", Text),
    Column("token_url", Text),
    Column("access_key_id", Text),
    Column("access_key_secret", Text),
    Column("client_id", Text),
    Column("client_secret", Text),
    Column("created_at", BigInteger),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", Text, primary_key=True),
    Column("name", Text),
    Column("secret_hash", Text),
    Column("created_at", BigInteger),
    Column("revoked_at", BigInteger),
)

channels = Table(
    "channels",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("adapter", Text),
    Column("name", Text),
    Column("webhook_url", Text),
    Column("secret", Text),
    Column("created_at", BigInteger),
    Column("deleted_at", BigInteger),
    Column("settings", Text),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel_id", Text),
    Column("customer_id", Text),
    Column("access_token", Text),
    Column("friendly_name", Text),
    Column("mime_type", Text),
    Column("size", BigInteger),
    Column("data", LargeBinary),
    Column("created_at", BigInteger),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel_id", Text),
    Column("external_id", Text),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("nickname", Text),
    Column("image", Text),
    Column("custom_fields", Text),
    Column("created_at", BigInteger),
    Column("opted_out", Integer),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel_id", Text),
    Column("customer_id", Text),
    Column("state", Text),
    Column("origin", Text),
    Column("de_thread_id", Text),
    Column("de_contact_id", Text),
    Column("next_seq", BigInteger),
    Column("last_customer_activity_at", BigInteger),
    Column("created_at", BigInteger),
    Column("ended_at", BigInteger),
    Column("ended_reason", Text),
    Column("idle_deadline", BigInteger),
    Column("countdown_deadline", BigInteger),
    Column("de_checked_at", BigInteger),
    Column("dismissed_at", BigInteger),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Text, primary_key=True),
    Column("channel_id", Text),
    Column("conversation_id", Text),
    Column("seq", BigInteger),
    Column("direction", Text),
    Column("sender", Text),
    Column("text", Text),
    Column("content", Text),
    Column("attachments", Text),
    Column("author", Text),
    Column("platform_message_id", Text),
    Column("de_message_id", Text),
    Column("status", Text),
    Column("created_at", BigInteger),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("lane", Text),
    Column("kind", Text),
    Column("payload", Text),
    Column("state", Text),
    Column("attempts", Integer),
    Column("next_attempt_at", BigInteger),
    Column("claimed_until", BigInteger),
    Column("claimed_by", Text),
    Column("last_error", Text),
    Column("created_at", BigInteger),
    Column("updated_at", BigInteger),
)
