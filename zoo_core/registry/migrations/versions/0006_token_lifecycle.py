"""tokens: expiry, read-only, last use, revocation

Revision ID: 0006_token_lifecycle
Revises: 0005_card_check
Create Date: 2026-11-29 19:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_token_lifecycle'
down_revision = '0005_card_check'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('token', sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('token', sa.Column('read_only', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('token', sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('token', sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('token', schema=None) as batch_op:
        for column in ('revoked_at', 'last_used_at', 'read_only', 'expires_at'):
            batch_op.drop_column(column)
