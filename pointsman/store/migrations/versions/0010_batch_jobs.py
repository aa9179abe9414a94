"""Batch scoring jobs and their finished chunks.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "batch_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("rows_total", sa.BigInteger, nullable=True),
        sa.Column("rows_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_flagged", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_per_s", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("runner", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_batch_jobs_created", "batch_jobs", ["created_at"])
    op.create_table(
        "batch_chunks",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("batch_jobs.id"), primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("flagged", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("batch_chunks")
    op.drop_index("ix_batch_jobs_created", "batch_jobs")
    op.drop_table("batch_jobs")
