"""uploads: who uploaded which blob, until when

Revision ID: 0004_uploads
Revises: 0003_search
Create Date: 2026-11-29 18:05:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004_uploads'
down_revision = '0003_search'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('upload',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner', 'sha256')
    )
    with op.batch_alter_table('upload', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upload_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_upload_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('upload', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_expires_at'))
        batch_op.drop_index(batch_op.f('ix_upload_sha256'))
    op.drop_table('upload')
