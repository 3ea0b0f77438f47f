"""search indexes: full-text search over models (SQLite FTS5 / PostgreSQL tsvector + GIN) and a tag table

Revision ID: 0003_search
Revises: 0002_attestation
Create Date: 2026-11-29 18:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_search'
down_revision = '0002_attestation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_tag',
                    sa.Column('model_id', sa.Integer(), sa.ForeignKey('model.id'), nullable=False),
                    sa.Column('tag', sa.String(length=64), nullable=False),
                    sa.PrimaryKeyConstraint('model_id', 'tag'))
    op.create_index('ix_model_tag_tag', 'model_tag', ['tag'])
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        op.execute("CREATE VIRTUAL TABLE model_search USING fts5(name, namespace, description, card, "
                   "tokenize='unicode61')")
    else:
        op.execute("CREATE TABLE model_search (model_id INTEGER PRIMARY KEY REFERENCES model(id), "
                   "document tsvector NOT NULL)")
        op.execute("CREATE INDEX ix_model_search_document ON model_search USING GIN (document)")
    from zoo_core.registry.search_index import reindex

    reindex(bind, [], latest_rows=False)  # every model already there (model_latest comes with 0008)


def downgrade() -> None:
    op.execute("DROP TABLE model_search")
    op.drop_index('ix_model_tag_tag', table_name='model_tag')
    op.drop_table('model_tag')
