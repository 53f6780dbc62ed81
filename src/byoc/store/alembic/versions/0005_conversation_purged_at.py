"""Retention: `conversations.purged_at`, when the purge deleted an ended conversation's content.

The purge looks for ended conversations not purged yet, oldest end first; the index serves
that lookup, so purged conversations cost nothing however many accumulate.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("purged_at", sa.BigInteger(), nullable=True))
    op.create_index("conversations_retention", "conversations", ["state", "purged_at", "ended_at"])


def downgrade() -> None:
    op.drop_index("conversations_retention", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("purged_at")
