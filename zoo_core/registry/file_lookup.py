"""One file of a version in one query, for downloads: a Range request for 8 MiB used to cost the server a full
`resolve` (the version with its card, aliases, parents, attestations and rankings: seven queries, ~3.4 ms) before
its first byte, a quarter of nginx's throughput on the same file.

The fast path answers only the plain case (the file is there and the viewer may download it); anything else returns
None, and the caller takes the step-by-step path, which says precisely what is missing.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

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
        with self.engine.connect() as connection:  # a connection: an ORM session costs as much as the query
            row = connection.execute(statement, params).first()
        if row is None or row.status == "yanked" or not viewer.can_see(row.visibility, namespace) \
                or not viewer.can_read_version(row.status, namespace):
            return None
        return FileSpec(path, row.sha256, row.size), row.commit
