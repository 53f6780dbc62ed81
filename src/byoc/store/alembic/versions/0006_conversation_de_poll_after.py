"""The end poll's pause: `conversations.de_poll_after`.

A conversation CXone could not be asked about (its contact gone, a tenant's credentials
refused) is left alone by the background end poll until then, so that it does not head every
round and keep the others from being checked. (A channel whose CXone is unavailable rests in
the poll's memory instead: the conversation did nothing wrong.)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("de_poll_after", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("de_poll_after")
