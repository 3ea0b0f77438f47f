"""The HTTP transport of `Registry`: the same methods, spoken to `zoo serve` with httpx."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx

from zoo_core.client import Registry
from zoo_core.errors import ZooError, error_from_response
from zoo_core.registry.files import materialise
from zoo_core.registry.refs import parse_ref
from zoo_core.registry.types import VersionInfo


class RemoteRegistry(Registry):
    def __init__(self, uri: str | None = None, token: str | None = None, timeout: float = 60.0):
        self.url = (uri or os.environ["ZOO_REGISTRY"]).rstrip("/")
        token = token or os.environ.get("ZOO_TOKEN")
        self.http = httpx.Client(base_url=self.url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
        self.root = Path(os.environ.get("ZOO_CACHE", "~/.cache/zoo")).expanduser()

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ZooError(f"cannot reach the registry at {self.url}: {exc}") from None
        if response.status_code >= 400:  # the server's error class, rebuilt
            raise error_from_response(response.status_code, response.headers, response.content)
        return response.json() if response.content else None

    @staticmethod
    def _path(ref: str) -> tuple[str, str]:
        parsed = parse_ref(ref)
        return f"/api/models/{parsed.namespace}/{parsed.name}", parsed.revision or "latest"

    def push(self, folder: str | Path, model: str, **options: Any) -> VersionInfo:
        folder = Path(folder).expanduser()
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        if not files:
            raise ZooError(f"'{folder}' is not a folder with files")
        specs = []
        for file in files:
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                while chunk := handle.read(1024 * 1024):
                    digest.update(chunk)
            relative, sha256, size = file.relative_to(folder).as_posix(), digest.hexdigest(), file.stat().st_size
            exists = self.http.head(f"/api/blobs/{sha256}")
            if exists.status_code != 200:  # equal files are stored once: upload only what the server lacks
                with file.open("rb") as handle:
                    self._call("PUT", f"/api/blobs/{sha256}", params={"path": relative}, content=handle,
                               headers={"Content-Length": str(size)})
            specs.append({"path": relative, "sha256": sha256, "size": size})
        model_path, _ = self._path(model)
        body = {"files": specs, **{k: v for k, v in options.items() if v is not None}}
        return _info(self._call("POST", f"{model_path}/versions", json=body))

    def pull(self, ref: str, dest: str | Path | None = None) -> Path:
        info = self.resolve(ref)
        model_path, _ = self._path(ref)
        target = Path(dest) if dest else self.root / info.commit

        def fetch(entry: dict[str, Any]):
            with self.http.stream("GET", f"{model_path}/versions/{info.number}/files/{entry['path']}") as response:
                if response.status_code != 200:
                    raise error_from_response(response.status_code, response.headers, response.read())
                yield from response.iter_bytes()

        return materialise(target, info.files, fetch)

    def resolve(self, ref: str) -> VersionInfo:
        model_path, revision = self._path(ref)
        return _info(self._call("GET", f"{model_path}/versions/{revision}"))

    def show(self, model: str) -> dict[str, Any]:
        return self._call("GET", self._path(model)[0])

    def versions(self, model: str) -> list[VersionInfo]:
        return [_info(v) for v in self.show(model)["versions"]]

    def search(self, query: str | None = None, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None and k != "metric"}
        if filters.get("metric"):
            name, op, value = filters["metric"]
            params["metric"] = f"{name}{op}{value}"
        if query:
            params["q"] = query
        return self._call("GET", "/api/search", params=params)

    def lineage(self, ref: str, direction: str = "both") -> dict[str, Any]:
        model_path, revision = self._path(ref)
        return self._call("GET", f"{model_path}/lineage/{revision}", params={"direction": direction})

    def set_alias(self, model: str, alias: str, version: int) -> VersionInfo:
        return _info(self._call("POST", f"{self._path(model)[0]}/aliases", json={"alias": alias, "version": version}))

    def alias_history(self, model: str) -> list[dict[str, Any]]:
        return self._call("GET", f"{self._path(model)[0]}/aliases/history")

    def _status(self, ref: str, status: str, reason: str | None) -> VersionInfo:
        model_path, revision = self._path(ref)
        return _info(self._call("POST", f"{model_path}/versions/{revision}/status",
                                json={"status": status, "reason": reason}))

    def deprecate(self, ref: str, reason: str | None = None) -> VersionInfo:
        return self._status(ref, "deprecated", reason)

    def yank(self, ref: str, reason: str | None = None) -> VersionInfo:
        return self._status(ref, "yanked", reason)

    def publish_draft(self, ref: str) -> VersionInfo:
        return self._status(ref, "published", None)

    def gc(self) -> dict[str, int]:
        raise ZooError("gc runs on the server's machine: zoo gc --registry FOLDER")

    def create_token(self, namespace: str, name: str = "default") -> str:
        raise ZooError("tokens are created on the server's machine: zoo token create NAMESPACE --registry FOLDER")


def _info(data: dict[str, Any]) -> VersionInfo:
    return VersionInfo(**data)
