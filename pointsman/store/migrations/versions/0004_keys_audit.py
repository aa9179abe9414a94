"""API keys and the audit log.

Revision ID: 0004
Revises: 0003
"""

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    pass  # filled by the auth work


def downgrade() -> None:
    pass
