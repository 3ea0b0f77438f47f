"""One file of a version in one query, for downloads: a Range request for 8 MiB used to cost the server a full
`resolve` (the version with its card, aliases, parents, attestations and rankings: seven queries, ~3.4 ms) before
its first byte, a quarter of nginx's throughput on the same file.

The fast path answers only the plain case (the file is there and the viewer may download it); anything else returns
None, and the caller takes the step-by-step path, which says precisely what is missing.

The query runs on the pool's DBAPI connection, its SQL compiled once from the statement below: SQLAlchemy's
Connection around it (checkout, begin, execution context, result, rollback) cost 150 us on SQLite, the query itself
12 us, and a Range request's whole server time is a few hundred. (So Server-Timing's query count leaves it out.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Compiled, Engine

from zoo_core.registry.models import Alias, FileEntry, Model, Namespace, Version
from zoo_core.registry.refs import revision_key
from zoo_core.registry.types import FileSpec, Viewer

_FILE_OF = (select(FileEntry.sha256, FileEntry.size, Version.commit, Version.status, Model.visibility)
            .join(Version, FileEntry.version_id == Version.id).join(Model, Version.model_id == Model.id)
            .join(Namespace, Model.namespace_id == Namespace.id)
            .where(Namespace.name == bindparam("ns"), Model.name == bindparam("name"),
                   FileEntry.path == bindparam("path")))
BY_NUMBER = _FILE_OF.where(Version.number == bindparam("number"))
BY_COMMIT = _FILE_OF.where(Version.commit == bindparam("commit"))
BY_ALIAS = _FILE_OF.join(Alias, Alias.version_id == Version.id).where(Alias.model_id == Model.id,
                                                                      Alias.name == bindparam("alias"))


class FileLookupMixin:
    """`find_file` for `RegistryService` (which provides `engine`)."""

    def find_file(self, namespace: str, name: str, revision: str, path: str,
                  viewer: Viewer) -> tuple[FileSpec, str] | None:
        """The file `path` of the version `revision` names (number, `v3`, commit, alias) and that version's commit,
        when `viewer` may download it (a readable model, a version it may see, not yanked); None otherwise."""
        params = {"ns": namespace, "name": name, "path": path}
        key, value = revision_key(revision)
        params[key] = value
        statement = {"number": BY_NUMBER, "commit": BY_COMMIT, "alias": BY_ALIAS}[key]
        row = first_row(self.engine, statement, params)
        if row is None:
            return None
        sha256, size, commit, status, visibility = row
        if status == "yanked" or not viewer.can_see(visibility, namespace) \
                or not viewer.can_read_version(status, namespace):
            return None
        return FileSpec(path, sha256, size), commit


_COMPILED: dict[tuple[int, str], Compiled] = {}


def first_row(engine: Engine, statement: Select, params: dict[str, Any]) -> tuple | None:
    """The first row of `statement` (simple columns: no type processing) with `params`, on a DBAPI connection of
    `engine`'s pool."""
    key = (id(statement), engine.dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = statement.compile(dialect=engine.dialect)
    values = compiled.construct_params(params)
    args = tuple(values[name] for name in compiled.positiontup) if compiled.positional else values
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(compiled.string, args)
            return cursor.fetchone()
        finally:
            cursor.close()
    finally:
        connection.close()  # back to the pool, rolled back
