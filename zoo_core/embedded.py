"""The embedded transport of `Registry`: a folder holding SQLite (or tables in `ZOO_DATABASE_URL`) and the blobs,
used in-process with no server. Whoever can write the folder is its administrator."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo_core.client import Registry
from zoo_core.registry.service import ADMIN, RegistryService, VersionInfo
from zoo_core.registry.types import GC_GRACE
from zoo_core.settings import get_settings

logger = logging.getLogger(__name__)


class EmbeddedRegistry(Registry):
    """A registry in a local folder; `database_url` puts its tables elsewhere (PostgreSQL)."""

    def __init__(self, root: str | Path, database_url: str | None = None):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        url = database_url or get_settings().database_url or f"sqlite:///{self.root / 'registry.db'}"
        self.service = RegistryService(url, self.root / "blobs")
        self.viewer = ADMIN

    def __repr__(self) -> str:
        return f"EmbeddedRegistry({str(self.root)!r})"

    def push(self, folder: str | Path, model: str, **options: Any) -> VersionInfo:
        info = self.service.push_folder(folder, model, viewer=self.viewer, **options)
        logger.debug("pushed %s as %s@%s into %s", folder, info.model_id, info.number, self.root)
        return info

    def pull(self, ref: str, dest: str | Path | None = None) -> Path:
        path = self.service.pull(ref, dest, viewer=self.viewer, cache=self.root / "cache")
        logger.debug("pulled %s from %s into %s", ref, self.root, path)
        return path

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

    def attest(self, ref: str, outcome: str, environment: dict[str, Any] | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.service.attest(ref, outcome, environment, details, self.viewer)

    def record_rank(self, ref: str, dataset: str, fingerprint: str, by: str, scores: dict[str, float], rank: int,
                    of: int, examples: int) -> dict[str, Any]:
        return self.service.record_rank(ref, dataset, fingerprint, by, scores, rank, of, examples, self.viewer)

    def gc(self, grace: float = GC_GRACE) -> dict[str, int]:
        return self.service.gc(grace)

    def create_token(self, namespace: str, name: str = "default", *, expires_in: float | None = None,
                     read_only: bool = False) -> str:
        return self.service.create_token(namespace, name, expires_in=expires_in, read_only=read_only)

    def list_tokens(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.service.list_tokens(namespace)

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return self.service.revoke_token(token_id)
