"""The registry as its users see it: one interface, `Registry`, and two sibling transports chosen by the URI's
scheme in `open_registry` (as mlflow chooses its registry store): a folder opens the embedded registry (SQLite +
blobs in that folder, no server), `http://` or `https://` speaks to `zoo serve`. The transports are imported only
when chosen, so opening a folder never loads the HTTP client and neither loads torch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_core.errors import ZooError
from zoo_core.registry.types import GC_GRACE

if TYPE_CHECKING:
    from zoo_core.registry.types import VersionInfo


class Registry(abc.ABC):
    """A registry of versioned checkpoints. Methods mirror the `zoo` registry commands; references look like
    `NAMESPACE/NAME[@VERSION|@ALIAS|@COMMIT]` (no revision: `latest`)."""

    @abc.abstractmethod
    def push(self, folder: str | Path, model: str, **options: Any) -> VersionInfo:
        """Publish the files of `folder` as the next version of `model`. Options: `status` ("published" or
        "draft"), `parent` (a reference or an external source), `relation`, `visibility`, `description`."""

    @abc.abstractmethod
    def pull(self, ref: str, dest: str | Path | None = None) -> Path:
        """Write a version's files into `dest` (default: a cache folder named by the version's commit), each checked
        against its sha256; returns the folder, which holds exactly the version's files."""

    @abc.abstractmethod
    def resolve(self, ref: str) -> VersionInfo:
        """The version a reference points at: files, metrics, card, parents, aliases."""

    @abc.abstractmethod
    def show(self, model: str) -> dict[str, Any]:
        """A model's summary with all its versions."""

    @abc.abstractmethod
    def versions(self, model: str) -> list[VersionInfo]:
        """All versions of a model, oldest first."""

    @abc.abstractmethod
    def search(self, query: str | None = None, **filters: Any) -> dict[str, Any]:
        """Models matching free text and filters (task, modality, backbone, family, strategy, license, tag,
        metric=(name, op, value), descendant_of, relation, reproduced, sort, page, per_page):
        `{"total", "results", ...}`."""

    @abc.abstractmethod
    def lineage(self, ref: str, direction: str = "both") -> dict[str, Any]:
        """The family graph of a version: `{"root", "nodes", "edges"}`; direction: ancestors, descendants, both."""

    @abc.abstractmethod
    def set_alias(self, model: str, alias: str, version: int) -> VersionInfo:
        """Point `alias` (production, staging, ...) at a version; returns that version."""

    @abc.abstractmethod
    def alias_history(self, model: str) -> list[dict[str, Any]]:
        """Every alias move of a model: when, which alias, from which version to which, by whom."""

    @abc.abstractmethod
    def deprecate(self, ref: str, reason: str | None = None) -> VersionInfo:
        """Mark a version deprecated: still served, with a warning."""

    @abc.abstractmethod
    def yank(self, ref: str, reason: str | None = None) -> VersionInfo:
        """Withdraw a version: no longer served, its aliases move away."""

    @abc.abstractmethod
    def publish_draft(self, ref: str) -> VersionInfo:
        """Publish a draft version (its card is checked now)."""

    @abc.abstractmethod
    def attest(self, ref: str, outcome: str, environment: dict[str, Any] | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record a reproduction of a version (`zoo reproduce --record`): outcome bit-identical, within tolerance
        or differs, the environment it ran in and what differed; shown by `resolve(ref).attestations`."""

    @abc.abstractmethod
    def record_rank(self, ref: str, dataset: str, fingerprint: str, by: str, scores: dict[str, float], rank: int,
                    of: int, examples: int) -> dict[str, Any]:
        """Record a version's transferability scores on a named data set (`zoo rank --record`): its `scores`, its
        `rank` of `of` candidates by `by`; shown by `resolve(ref).rankings` and on the model's page."""

    @abc.abstractmethod
    def gc(self, grace: float = GC_GRACE) -> dict[str, int]:
        """Remove blobs no version references and abandoned uploads, once older than `grace` seconds (pushes in
        flight keep theirs): `{"removed", "bytes"}` (embedded registries only)."""

    @abc.abstractmethod
    def create_token(self, namespace: str, name: str = "default", *, expires_in: float | None = None,
                     read_only: bool = False) -> str:
        """A new API token for `namespace` (reads its private models and, unless `read_only`, writes), shown once;
        `expires_in` seconds (default: until revoked). Embedded registries only: tokens are made where the data is."""

    @abc.abstractmethod
    def list_tokens(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every token (of `namespace`): id, name, state (active, expired, revoked), read-only, created, expires,
        last used; never the secret (embedded registries only)."""

    @abc.abstractmethod
    def revoke_token(self, token_id: int) -> dict[str, Any]:
        """Revoke a token by id: refused from the next request on (embedded registries only)."""


def _embedded(location: str, token: str | None, database_url: str | None) -> Registry:
    from zoo_core.embedded import EmbeddedRegistry

    return EmbeddedRegistry(location, database_url=database_url)


def _http(location: str, token: str | None, database_url: str | None) -> Registry:
    if database_url:
        raise ZooError("database_url applies to an embedded registry, not to a server URL")
    from zoo_core.remote import HttpRegistry

    return HttpRegistry(location, token=token)


# scheme -> transport; "" is a plain folder path
TRANSPORTS: dict[str, Callable[[str, str | None, str | None], Registry]] = {
    "": _embedded, "file": _embedded, "http": _http, "https": _http,
}


def open_registry(uri: str | Path | None = None, *, token: str | None = None,
                  database_url: str | None = None) -> Registry:
    """Open a registry by URI: a folder (or `file://FOLDER`) is embedded, `http(s)://host:port` is a `zoo serve`.

    Args:
        uri: default `ZOO_REGISTRY` (default `~/.zoo`).
        token: for a server; default `ZOO_TOKEN`. An embedded registry needs none (whoever can write the folder is
            its administrator).
        database_url: tables of an embedded registry elsewhere (PostgreSQL); default `ZOO_DATABASE_URL`, else
            SQLite in the folder.

    Example: `open_registry("http://127.0.0.1:8000").resolve("acme/xray@production")`.
    """
    from zoo_core.settings import get_settings

    location = str(uri) if uri is not None else get_settings().registry
    scheme, sep, rest = location.partition("://")
    if not sep:
        scheme, rest = "", location
    transport = TRANSPORTS.get(scheme.lower())
    if transport is None:
        known = ", ".join(f"{s}://" for s in TRANSPORTS if s)
        raise ZooError(f"unknown registry scheme '{scheme}' in '{location}': use a folder, {known}")
    return transport(location if scheme.lower() in ("http", "https") else rest, token, database_url)
