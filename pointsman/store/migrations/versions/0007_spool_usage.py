"""Spool usage: each host's prediction-log spool, as its workers last saw it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "spool_usage",
        sa.Column("spool", sa.String(512), primary_key=True),
        sa.Column("used_bytes", sa.BigInteger, nullable=False),
        sa.Column("budget_bytes", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spool_usage")
