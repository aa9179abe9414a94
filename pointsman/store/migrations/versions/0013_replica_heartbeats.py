"""Replica heartbeats: each server worker's last beat and its CPU, memory and loop lag.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.create_table(
        "replica_heartbeats",
        sa.Column("replica", sa.String(256), primary_key=True),
        sa.Column("worker", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cpu_ratio", sa.Float, nullable=True),
        sa.Column("rss_bytes", sa.BigInteger, nullable=True),
        sa.Column("loop_lag_ms", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("replica_heartbeats")
