"""`zoo_core.Registry(uri)`: one interface, two transports. Embedded (a folder: SQLite + blobs, no server) is the
default; `http://host:port` talks to `zoo serve` with the same methods. `ZOO_REGISTRY` (default `~/.zoo`) chooses
the registry, `ZOO_TOKEN` the token for writing to a server, `ZOO_DATABASE_URL` points an embedded registry's
tables at PostgreSQL instead of SQLite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo_core.errors import ZooError
from zoo_core.registry.service import ADMIN, RegistryService, VersionInfo


def default_uri() -> str:
    return os.environ.get("ZOO_REGISTRY", "~/.zoo")


def _is_url(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


class Registry:
    """A registry: a local folder (embedded) or a server URL. Methods mirror the `zoo` registry commands."""

    def __new__(cls, uri: str | None = None, *args: Any, **kwargs: Any):
        if cls is Registry and _is_url(uri or default_uri()):
            from zoo_core.remote import RemoteRegistry

            return super().__new__(RemoteRegistry)
        return super().__new__(cls)

    def __init__(self, uri: str | None = None, database_url: str | None = None):
        uri = uri or default_uri()
        self.root = Path(uri).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        url = database_url or os.environ.get("ZOO_DATABASE_URL") or f"sqlite:///{self.root / 'registry.db'}"
        self.service = RegistryService(url, self.root / "blobs")
        self.viewer = ADMIN

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    def push(self, folder: str | Path, model: str, **options: Any) -> VersionInfo:
        return self.service.push_folder(folder, model, viewer=self.viewer, **options)

    def import_model(self, source: str, model: str, draft: bool = False, visibility: str | None = None) -> VersionInfo:
        """Register a model in Hugging Face layout as a root of lineage: `source` is a folder or
        `hf:ORG/NAME[@REVISION]` (through huggingface_hub: its cache, HF_HUB_OFFLINE); it becomes the parent."""
        if source.startswith("hf:"):
            from huggingface_hub import snapshot_download

            repo, _, revision = source[3:].partition("@")
            try:
                folder = Path(snapshot_download(repo, revision=revision or None))
            except Exception as exc:  # huggingface_hub raises many kinds; the user needs the one line
                raise ZooError(f"cannot get {source}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
            parent = f"hf:{repo}@{folder.name}"  # snapshot folders are named by commit
        else:
            folder = Path(source).expanduser().resolve()
            if not (folder / "config.json").is_file():
                raise ZooError(f"'{source}' is not a model folder in Hugging Face layout (no config.json)")
            parent = f"file:{folder}"
        return self.push(folder, model, status="draft" if draft else "published", parent=parent,
                         relation="import", visibility=visibility)

    def pull(self, ref: str, dest: str | Path | None = None) -> Path:
        return self.service.pull(ref, dest, viewer=self.viewer, cache=self.root / "cache")

    def resolve(self, ref: str) -> VersionInfo:
        return self.service.resolve(ref, self.viewer)

    def show(self, model: str) -> dict[str, Any]:
        return self.service.model_summary(model, self.viewer)

    def versions(self, model: str) -> list[VersionInfo]:
        return self.service.versions(model, self.viewer)

    def search(self, query: str | None = None, **filters: Any) -> dict[str, Any]:
        return self.service.search(query, viewer=self.viewer, **filters)

    def lineage(self, ref: str, direction: str = "both") -> dict[str, Any]:
        return self.service.lineage(ref, direction, self.viewer)

    def set_alias(self, model: str, alias: str, version: int) -> VersionInfo:
        return self.service.set_alias(model, alias, version, self.viewer)

    def alias_history(self, model: str) -> list[dict[str, Any]]:
        return self.service.alias_history(model, self.viewer)

    def deprecate(self, ref: str, reason: str | None = None) -> VersionInfo:
        return self.service.set_status(ref, "deprecated", reason, self.viewer)

    def yank(self, ref: str, reason: str | None = None) -> VersionInfo:
        return self.service.set_status(ref, "yanked", reason, self.viewer)

    def publish_draft(self, ref: str) -> VersionInfo:
        return self.service.set_status(ref, "published", None, self.viewer)

    def gc(self) -> dict[str, int]:
        return self.service.gc()

    def create_token(self, namespace: str, name: str = "default") -> str:
        return self.service.create_token(namespace, name)
