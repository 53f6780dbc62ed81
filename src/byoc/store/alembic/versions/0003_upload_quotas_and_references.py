"""Uploads: the address an anonymous visitor uploaded from, and when a message first carried it.

The address bounds what anonymous visitors may store; `referenced_at` tells the sweep which
uploads no message ever carried. Files stored before this revision count as carried, so only
uploads from now on can be swept.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attachments", sa.Column("anonymous_from", sa.Text(), nullable=True))
    op.add_column("attachments", sa.Column("referenced_at", sa.BigInteger(), nullable=True))
    op.execute("UPDATE attachments SET referenced_at = created_at")
    op.create_index("attachments_anonymous_from", "attachments", ["anonymous_from", "created_at"])
    op.create_index("attachments_channel", "attachments", ["channel_id", "created_at"])
    op.create_index("attachments_customer", "attachments", ["customer_id", "created_at"])
    op.create_index("attachments_unreferenced", "attachments", ["referenced_at", "created_at"])


def downgrade() -> None:
    op.drop_index("attachments_unreferenced", table_name="attachments")
    op.drop_index("attachments_customer", table_name="attachments")
    op.drop_index("attachments_channel", table_name="attachments")
    op.drop_index("attachments_anonymous_from", table_name="attachments")
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("referenced_at")
        batch.drop_column("anonymous_from")
