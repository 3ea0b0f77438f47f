"""every version records its card check (card_complete, card_missing) and its commit message

Revision ID: 0005_card_check
Revises: 0004_uploads
Create Date: 2026-11-29 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_card_check'
down_revision = '0004_uploads'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_complete', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('card_missing', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('message', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_version_card_complete'), ['card_complete'], unique=False)
    # versions stored before: check their cards now (published ones passed the old check; drafts may not)
    from zoo_core.registry.cards import missing_for_publication

    connection = op.get_bind()
    version = sa.table('version', sa.column('id', sa.Integer), sa.column('card', sa.Text),
                       sa.column('card_complete', sa.Boolean), sa.column('card_missing', sa.JSON))
    for row_id, card in connection.execute(sa.select(version.c.id, version.c.card)).all():
        missing = missing_for_publication(card)
        connection.execute(version.update().where(version.c.id == row_id)
                           .values(card_complete=not missing, card_missing=missing))


def downgrade() -> None:
    with op.batch_alter_table('version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_version_card_complete'))
        batch_op.drop_column('message')
        batch_op.drop_column('card_missing')
        batch_op.drop_column('card_complete')
