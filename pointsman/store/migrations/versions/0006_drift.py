"""Drift results: a time series per model, version and feature.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "drift_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("feature", sa.String(256), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_s", sa.Float, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("psi", sa.Float, nullable=True),
        sa.Column("grade", sa.String(16), nullable=False),
        sa.Column("test", sa.String(8), nullable=False),
        sa.Column("statistic", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("top_change", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_drift_results_model_time", "drift_results", ["model", "window_end"])


def downgrade() -> None:
    op.drop_index("ix_drift_results_model_time", "drift_results")
    op.drop_table("drift_results")
