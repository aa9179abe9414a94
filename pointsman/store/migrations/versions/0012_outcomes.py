"""Outcomes: the true values of predictions, by request id or business key.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("key_name", sa.String(128), nullable=False),
        sa.Column("key_value", sa.String(256), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("outcome", sa.JSON, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(128), nullable=True),
        sa.UniqueConstraint("model", "key_name", "key_value", "row", name="uq_outcomes_key"),
    )
    op.create_index("ix_outcomes_model_received", "outcomes", ["model", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_model_received", "outcomes")
    op.drop_table("outcomes")
