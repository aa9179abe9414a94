"""The prediction log.

Revision ID: 0003
Revises: 0002
"""

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    pass  # filled by the prediction-log work


def downgrade() -> None:
    pass
