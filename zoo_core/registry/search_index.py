"""Search indexes: full-text search with ranking over each model's name, namespace, description and the card of
its `latest` version (SQLite FTS5, PostgreSQL's tsvector with a GIN index), tags as rows of an indexed table, and
each model's row of `model_latest`: the model and its `latest` version flattened into one narrow row, which is all
that search filters, sorts and counts (at 100,000 models, reaching the same columns through alias -> version ->
namespace cost three quarters of a text query's time: those rows are wide, with cards and JSON documents).

The indexes follow the registry by themselves: after every flush, the models whose row or `latest` alias changed
are indexed again in the same transaction (so a rolled-back publish leaves no trace). The tables are created by the
migrations 0003_search and 0008_model_latest (which also index every model already there).

A query of words matches models holding every word as a word or a word's beginning (`xray` finds `chest-xray`,
`res` finds `resnet`), hyphenated words in either form (`xray` finds a card's X-ray, `x-ray` an xray: the index
holds each text's hyphenated words joined too, search_terms.joined_forms; migration 0009 indexed the models
already there); a query with other characters (`50%`) is matched as literal text in the same fields, as before
full-text search.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String, bindparam, event, func, literal_column, or_, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel, select

from zoo_core.registry.models import Alias, Model
from zoo_core.registry.search_terms import (  # noqa: F401
    SQLITE_HITS,
    WORDS,
    escape_like,
    is_plain,
    joined_forms,
    pg_tsquery,
    sqlite_match,
)


class ModelTag(SQLModel, table=True):
    """A model's tags (lowercase), one row each, for models with a `latest` version (the searchable ones): tag
    filters use the index on `tag`, not the JSON list's text."""

    __tablename__ = "model_tag"
    __table_args__ = (Index("ix_model_tag_tag_model", "tag", "model_id"),)

    model_id: int = Field(foreign_key="model.id", primary_key=True)
    tag: str = Field(primary_key=True, max_length=64, index=True)


class ModelLatest(SQLModel, table=True):
    """A model and its `latest` version in one narrow row (no row while it has none): what search reads."""

    __tablename__ = "model_latest"
    __table_args__ = (Index("ix_model_latest_updated", "updated_at", "model_id"),
                      Index("ix_model_latest_name", "namespace", "name"),
                      Index("ix_model_latest_facets", "task", "modality", "family", "strategy", "license",
                            "card_complete", "visibility"))

    model_id: int = Field(foreign_key="model.id", primary_key=True)
    version_id: int = Field(foreign_key="version.id", index=True)
    namespace: str = Field(max_length=64)
    name: str = Field(max_length=96)
    visibility: str = Field(max_length=8)
    task: str | None = Field(default=None, max_length=64)
    modality: str | None = Field(default=None, max_length=16)
    license: str | None = Field(default=None, max_length=64)
    backbone: str | None = Field(default=None, max_length=64)
    family: str | None = Field(default=None, max_length=32)
    strategy: str | None = Field(default=None, max_length=32)
    library: str | None = Field(default=None, max_length=32)
    card_complete: bool = True
    created_at: datetime
    updated_at: datetime


def fts_query(query: str, dialect: str) -> str:
    """The value of `matching`'s parameter `fts` for `query`."""
    return sqlite_match(query) if dialect == "sqlite" else pg_tsquery(query)


def matching(stmt, dialect: str, model_id=None):
    """`stmt` (over models: `model_id` their id column, Model.id unless given) narrowed to full-text matches of
    the bound parameter `fts` (`fts_query`); returns (statement, rank expression). Rank: lower is better. The text
    is a parameter, so the statement can be built once and run for every query (search's statement cache)."""
    model_id = Model.id if model_id is None else model_id
    if dialect == "sqlite":
        hits = text(SQLITE_HITS).columns(model_id=Integer(), rank=Float()).subquery("hits")
        return stmt.join(hits, hits.c.model_id == model_id), hits.c.rank
    if getattr(model_id, "class_", None) is ModelLatest:  # its row carries the document: no join
        tsquery = func.to_tsquery(literal_column("'simple'::regconfig"), bindparam("fts", type_=String()))
        document = literal_column("model_latest.document")
        return stmt.where(document.op("@@")(tsquery)), -func.ts_rank(document, tsquery)
    hits = text("SELECT model_id, -ts_rank(document, to_tsquery('simple', :fts)) AS rank FROM model_search "
                "WHERE document @@ to_tsquery('simple', :fts)").columns(model_id=Integer(), rank=Float()) \
        .subquery("hits")
    return stmt.join(hits, hits.c.model_id == model_id), hits.c.rank


def tagged(tag, model_id=None):
    """A condition: the model (`model_id`, Model.id unless given) has `tag` (a lowercase value or a bound
    parameter), one probe of the tag table's primary key."""
    model_id = Model.id if model_id is None else model_id
    return select(ModelTag.model_id).where(ModelTag.model_id == model_id, ModelTag.tag == tag).exists()


def like_pattern(query: str) -> str:
    """The value of `literal_match`'s parameter `like` for `query`: its own % and _ are plain characters."""
    return f"%{escape_like(query.lower())}%"


def literal_match(columns) -> Any:
    """A condition: one of `columns` holds the bound parameter `like` (`like_pattern`), case-insensitively."""
    like = bindparam("like", type_=String())
    return or_(*(func.lower(column).like(like, escape="\\") for column in columns))


# -- keeping the indexes current ---------------------------------------------------------------------------------------
DOCUMENT = """SELECT m.id, ns.name, m.name, m.description, COALESCE(v.card, ''), m.tags, v.id
              FROM model m JOIN namespace ns ON ns.id = m.namespace_id
              LEFT JOIN alias a ON a.model_id = m.id AND a.name = 'latest'
              LEFT JOIN version v ON v.id = a.version_id
              WHERE m.id IN ({ids})"""


def reindex(connection: Connection, model_ids: list[int], latest_rows: bool = True) -> None:
    """Index `model_ids` again (all models when empty: the migration's first indexing); `latest_rows=False` leaves
    `model_latest` alone (the migration 0003, which runs before that table exists)."""
    where = ", ".join(str(int(i)) for i in model_ids) if model_ids else "SELECT id FROM model"
    _index_text(connection, where)
    if latest_rows:  # after the text index: on PostgreSQL its row copies the document
        index_latest(connection, where)


def _index_text(connection: Connection, where: str) -> None:
    rows = connection.execute(text(DOCUMENT.format(ids=where))).all()
    ids = [row[0] for row in rows] or [-1]
    listed = ", ".join(str(i) for i in ids)
    connection.execute(text(f"DELETE FROM model_search WHERE {'rowid' if _sqlite(connection) else 'model_id'} "
                            f"IN ({listed})"))
    connection.execute(text(f"DELETE FROM model_tag WHERE model_id IN ({listed})"))
    if not rows:
        return
    documents = [{"id": r[0], "ns": _joined(r[1]), "name": _joined(_spaced(r[2])), "description": _joined(r[3] or ""),
                  "card": _joined(r[4])} for r in rows]
    if _sqlite(connection):
        connection.execute(text("INSERT INTO model_search (rowid, name, namespace, description, card) "
                                "VALUES (:id, :name, :ns, :description, :card)"), documents)
    else:
        connection.execute(text(
            "INSERT INTO model_search (model_id, document) VALUES (:id, "
            "setweight(to_tsvector('simple', CAST(:name AS text) || ' ' || CAST(:ns AS text)), 'A') || "
            "setweight(to_tsvector('simple', CAST(:description AS text)), 'B') || "
            "setweight(to_tsvector('simple', CAST(:card AS text)), 'C'))"), documents)
    tags = [{"id": r[0], "tag": tag} for r in rows if r[6] is not None
            for tag in sorted({str(t).lower()[:64] for t in (_json(r[5]) or [])})]
    if tags:
        connection.execute(text("INSERT INTO model_tag (model_id, tag) VALUES (:id, :tag)"), tags)


LATEST = """INSERT INTO model_latest (model_id, version_id, namespace, name, visibility, task, modality, license,
                                      backbone, family, strategy, library, card_complete, created_at, updated_at{doc})
            SELECT m.id, v.id, ns.name, m.name, m.visibility, m.task, m.modality, m.license, v.backbone, v.family,
                   v.strategy, v.library, v.card_complete, m.created_at, m.updated_at{doc_value}
            FROM model m JOIN namespace ns ON ns.id = m.namespace_id
            JOIN alias a ON a.model_id = m.id AND a.name = 'latest' JOIN version v ON v.id = a.version_id
            {doc_join} WHERE m.id IN ({ids})"""


def index_latest(connection: Connection, where: str, tags: bool = True) -> None:
    """`model_latest`'s rows of the models `where` (a list of ids or a subquery) written again, in the database.
    On PostgreSQL the row carries a copy of the model's text document (GIN-indexed): matching, filtering and
    ranking then read one table, where joining model_search to model_latest took most of a query's time; and a
    copy of its tags (an array, from the tag table: written first), which facet counts read in the row they
    already hold (a word's 7,733 matches: 23 ms probing the tag table, 10 reading the copies). `tags=False`:
    before the migration 0009 made that column."""
    connection.execute(text(f"DELETE FROM model_latest WHERE model_id IN ({where})"))
    pg = {"doc": ", document" + (", tags" if tags else ""),
          "doc_value": ", s.document" + (", ARRAY(SELECT t.tag FROM model_tag t WHERE t.model_id = m.id "
                                        "ORDER BY t.tag)" if tags else ""),
          "doc_join": "JOIN model_search s ON s.model_id = m.id"}
    connection.execute(text(LATEST.format(ids=where, **({"doc": "", "doc_value": "", "doc_join": ""}
                                                        if _sqlite(connection) else pg))))


def _json(value):
    import json

    return json.loads(value) if isinstance(value, str) else value


def _spaced(name: str) -> str:
    """A model name with its separators as spaces too (`xray_resnet.v2` -> words xray, resnet, v2)."""
    return f"{name} {re.sub(r'[._-]+', ' ', name)}"


def _joined(text: str) -> str:
    """`text` and its hyphenated words joined (search_terms.joined_forms), in the same field: same weight."""
    joined = joined_forms(text)
    return f"{text}\n{joined}" if joined else text


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
