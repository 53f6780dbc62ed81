"""SQLite: primary-key columns NOT NULL, as on PostgreSQL and in the metadata.

The hand-written migrations wrote `id TEXT PRIMARY KEY`, which SQLite (unlike PostgreSQL)
lets hold NULL. Tables created that way are rebuilt with the constraint; tables the baseline
created already have it and are left alone, as is PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Parents before children, so each rebuilt table's foreign keys point at a finished one.
PRIMARY_KEYS = (
    ("tenants", "id"),
    ("oauth_clients", "client_id"),
    ("channels", "id"),
    ("customers", "id"),
    ("conversations", "id"),
    ("messages", "id"),
    ("attachments", "id"),
    ("outbox", "id"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    inspector = sa.inspect(bind)
    for table, key in PRIMARY_KEYS:
        column = next(c for c in inspector.get_columns(table) if c["name"] == key)
        if not column["nullable"]:
            continue
        # Reflection does not see AUTOINCREMENT; without it the rebuilt outbox could hand out
        # the id of a row deleted at the top again.
        kwargs = {"sqlite_autoincrement": True} if table == "outbox" else {}
        with op.batch_alter_table(table, recreate="always", table_kwargs=kwargs) as batch:
            batch.alter_column(key, existing_type=column["type"], nullable=False)


def downgrade() -> None:
    pass  # NOT NULL on a primary key is right on every database: nothing to take back
