"""OAuth clients belong to one tenant: `oauth_clients.tenant_id`.

A box client may act only on the channels of its own tenant. The clients that exist already
were created when the deployment served the default tenant alone: they move to it. The column
is filled through a temporary server default, dropped again so that every new client names its
tenant explicitly.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DEFAULT_TENANT_ID = "default"  # byoc.tenancy.DEFAULT_TENANT_ID, fixed as it was at this revision


def upgrade() -> None:
    op.add_column(
        "oauth_clients",
        sa.Column(
            "tenant_id",
            sa.Text(),
            nullable=False,
            server_default=sa.text(f"'{DEFAULT_TENANT_ID}'"),
        ),
    )
    with op.batch_alter_table("oauth_clients") as batch:
        batch.alter_column("tenant_id", existing_type=sa.Text(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("tenant_id")
