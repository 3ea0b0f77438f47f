"""attestation table (issue 17: zoo reproduce --record)

Revision ID: 0002_attestation
Revises: 0001
Create Date: 2026-11-29 18:10:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002_attestation'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attestation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('environment', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['version.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('attestation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attestation_version_id'), ['version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attestation_outcome'), ['outcome'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('attestation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attestation_outcome'))
        batch_op.drop_index(batch_op.f('ix_attestation_version_id'))
    op.drop_table('attestation')
