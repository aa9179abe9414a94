"""The prediction log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route_revision", sa.Integer, nullable=True),
        sa.Column("client", sa.String(128), nullable=True),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("model_ms", sa.Float, nullable=True),
        sa.Column("findings", sa.JSON, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("extra", sa.JSON, nullable=True),
        sa.UniqueConstraint("request_id", "role", "version", name="uq_prediction_log_key"),
    )
    op.create_index("ix_prediction_log_model_time", "prediction_log", ["model", "time"])
    op.create_index("ix_prediction_log_time", "prediction_log", ["time"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_time", "prediction_log")
    op.drop_index("ix_prediction_log_model_time", "prediction_log")
    op.drop_table("prediction_log")
