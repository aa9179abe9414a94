"""A version's compiled (ONNX) artifact and its check; which runtime answered a prediction.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("compiled", sa.JSON, nullable=True))
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("runtime", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("runtime")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("compiled")
