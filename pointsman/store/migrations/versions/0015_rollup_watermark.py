"""The rollups' watermark: the records up to it are rolled up, off the shipper's transaction.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from pointsman.store.rollups import roll_up

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    table = op.create_table(
        "rollup_watermark",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
    )
    # Until now every shipper rolled up its records in its own transaction: all are counted.
    last = op.get_bind().execute(sa.text("SELECT coalesce(max(id), 0) FROM prediction_log"))
    op.bulk_insert(table, [{"id": 1, "last_id": int(last.scalar_one())}])


def downgrade() -> None:
    # The shippers of 0014 roll up in their own transaction: count the records above the mark.
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT last_id FROM rollup_watermark")).scalar()
    roll_up(bind, "p.id > :low", {"low": int(last or 0)})
    op.drop_table("rollup_watermark")
