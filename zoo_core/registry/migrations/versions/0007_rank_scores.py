"""rankscore table (issue 14: zoo rank --record)

Revision ID: 0007_rank_scores
Revises: 0006_token_lifecycle
Create Date: 2026-11-29 21:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007_rank_scores'
down_revision = '0006_token_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rankscore',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('dataset', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('of', sa.Integer(), nullable=False),
    sa.Column('examples', sa.Integer(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['version.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rankscore', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rankscore_version_id'), ['version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rankscore_dataset'), ['dataset'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rankscore', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rankscore_dataset'))
        batch_op.drop_index(batch_op.f('ix_rankscore_version_id'))
    op.drop_table('rankscore')
