"""Search indexes: full-text search with ranking over each model's name, namespace, description and the card of
its `latest` version (SQLite FTS5, PostgreSQL's tsvector with a GIN index), and tags as rows of an indexed table.

The indexes follow the registry by themselves: after every flush, the models whose row or `latest` alias changed
are indexed again in the same transaction (so a rolled-back publish leaves no trace). The tables are created by the
migration 0003_search (which also indexes every model already there).

A query of words matches models holding every word as a word or a word's beginning (`xray` finds `chest-xray`,
`res` finds `resnet`); a query with other characters (`50%`, `off_sale`) is matched as literal text in the same
fields, as before full-text search.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Float, Integer, event, or_, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel, select

from zoo_core.registry.models import Alias, Model

WORDS = re.compile(r"[^\W_]+")  # what both engines' tokenizers call a word: letters and digits
PLAIN = re.compile(r"[\w\s-]+")  # a query of words (and hyphens, which both engines read as spaces)
# the weight of a match in each field (name and namespace first, then the description, then the card)
SQLITE_WEIGHTS = "10.0, 5.0, 2.0, 1.0"


class ModelTag(SQLModel, table=True):
    """A model's tags (lowercase), one row each: tag filters use the index on `tag`, not the JSON list's text."""

    __tablename__ = "model_tag"

    model_id: int = Field(foreign_key="model.id", primary_key=True)
    tag: str = Field(primary_key=True, max_length=64, index=True)


def is_plain(query: str) -> bool:
    return bool(PLAIN.fullmatch(query)) and bool(WORDS.search(query))


def sqlite_match(query: str) -> str:
    """An FTS5 MATCH expression: every word, as a quoted prefix (the user's text is never FTS5 syntax)."""
    return " ".join(f'"{word}"*' for word in WORDS.findall(query))


def pg_tsquery(query: str) -> str:
    return " & ".join(f"{word}:*" for word in WORDS.findall(query.lower()))


def matching(stmt, query: str, dialect: str):
    """`stmt` (models joined with their namespace and `latest` version) narrowed to full-text matches of `query`;
    returns (statement, rank expression or None). Rank: lower is better."""
    if dialect == "sqlite":
        hits = text(f"SELECT rowid AS model_id, bm25(model_search, {SQLITE_WEIGHTS}) AS rank FROM model_search "
                    "WHERE model_search MATCH :fts").bindparams(fts=sqlite_match(query)) \
            .columns(model_id=Integer(), rank=Float()).subquery("hits")
        return stmt.join(hits, hits.c.model_id == Model.id), hits.c.rank
    hits = text("SELECT model_id, -ts_rank(document, to_tsquery('simple', :fts)) AS rank FROM model_search "
                "WHERE document @@ to_tsquery('simple', :fts)").bindparams(fts=pg_tsquery(query)) \
        .columns(model_id=Integer(), rank=Float()).subquery("hits")
    return stmt.join(hits, hits.c.model_id == Model.id), hits.c.rank


def tagged(tag: str):
    """A condition: the model has `tag` (case-insensitively), one probe of the tag table's primary key."""
    return select(ModelTag.model_id).where(ModelTag.model_id == Model.id, ModelTag.tag == tag.lower()).exists()


def literal_match(query: str, columns) -> Any:
    from sqlalchemy import func

    from zoo_core.registry.queries import escape_like

    like = f"%{escape_like(query.lower())}%"  # the query's own % and _ are plain characters
    return or_(*(func.lower(column).like(like, escape="\\") for column in columns))


# -- keeping the indexes current ---------------------------------------------------------------------------------------
DOCUMENT = """SELECT m.id, ns.name, m.name, m.description, COALESCE(v.card, ''), m.tags
              FROM model m JOIN namespace ns ON ns.id = m.namespace_id
              LEFT JOIN alias a ON a.model_id = m.id AND a.name = 'latest'
              LEFT JOIN version v ON v.id = a.version_id
              WHERE m.id IN ({ids})"""


def reindex(connection: Connection, model_ids: list[int]) -> None:
    """Index `model_ids` again (all models when empty: the migration's first indexing)."""
    where = ", ".join(str(int(i)) for i in model_ids) if model_ids else "SELECT id FROM model"
    rows = connection.execute(text(DOCUMENT.format(ids=where))).all()
    ids = [row[0] for row in rows] or [-1]
    listed = ", ".join(str(i) for i in ids)
    connection.execute(text(f"DELETE FROM model_search WHERE {'rowid' if _sqlite(connection) else 'model_id'} "
                            f"IN ({listed})"))
    connection.execute(text(f"DELETE FROM model_tag WHERE model_id IN ({listed})"))
    if not rows:
        return
    documents = [{"id": r[0], "ns": r[1], "name": _spaced(r[2]), "description": r[3] or "", "card": r[4]}
                 for r in rows]
    if _sqlite(connection):
        connection.execute(text("INSERT INTO model_search (rowid, name, namespace, description, card) "
                                "VALUES (:id, :name, :ns, :description, :card)"), documents)
    else:
        connection.execute(text(
            "INSERT INTO model_search (model_id, document) VALUES (:id, "
            "setweight(to_tsvector('simple', CAST(:name AS text) || ' ' || CAST(:ns AS text)), 'A') || "
            "setweight(to_tsvector('simple', CAST(:description AS text)), 'B') || "
            "setweight(to_tsvector('simple', CAST(:card AS text)), 'C'))"), documents)
    tags = [{"id": r[0], "tag": tag} for r in rows
            for tag in sorted({str(t).lower()[:64] for t in (_json(r[5]) or [])})]
    if tags:
        connection.execute(text("INSERT INTO model_tag (model_id, tag) VALUES (:id, :tag)"), tags)


def _json(value):
    import json

    return json.loads(value) if isinstance(value, str) else value


def _spaced(name: str) -> str:
    """A model name with its separators as spaces too (`xray_resnet.v2` -> words xray, resnet, v2)."""
    return f"{name} {re.sub(r'[._-]+', ' ', name)}"


def _sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


@event.listens_for(OrmSession, "after_flush")
def _after_flush(session: OrmSession, _context) -> None:
    changed = {obj.id for obj in (*session.new, *session.dirty) if isinstance(obj, Model)}
    changed |= {obj.model_id for obj in (*session.new, *session.dirty, *session.deleted)
                if isinstance(obj, Alias) and obj.name == "latest"}
    changed.discard(None)
    if changed:
        reindex(session.connection(), sorted(changed))
