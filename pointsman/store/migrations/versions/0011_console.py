"""The console: a model's description, owner and tags; browser sessions; clients
(applications) and the key requests made for them.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("description", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("owner", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("tags", sa.JSON, nullable=True))
    op.create_table(
        "ui_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "clients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("contact", sa.String(256), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "key_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("key_name", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("key_requests")
    op.drop_table("clients")
    op.drop_table("ui_sessions")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("tags")
        batch.drop_column("owner")
        batch.drop_column("description")
