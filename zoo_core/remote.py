"""The HTTP transport of `Registry`: the same methods, spoken to `zoo serve` with httpx. Pulls go through
huggingface_hub's `snapshot_download` against the server's own Hub API (resume, parallel files, progress bars, file
locks); every error answer of the server becomes a `ZooError` in `_raise_for`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from pathlib import Path
from typing import Any, NoReturn

import httpx

from zoo_core.client import Registry
from zoo_core.errors import ZooError, error_from_response
from zoo_core.registry.files import file_matches, file_sha256, folder_complete
from zoo_core.registry.refs import parse_ref
from zoo_core.registry.types import GC_GRACE, VersionInfo, check_path, check_tree
from zoo_core.settings import get_settings

logger = logging.getLogger(__name__)



def _rewind(body: Any) -> bool:
    """Whether a request body can be sent again: none, bytes, or a file rewound to its start."""
    if body is None or isinstance(body, (bytes, str)):
        return True
    try:
        body.seek(0)
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _raise_for(response: Any) -> NoReturn:
    """Turn an error answer (an httpx or requests response, status >= 400) into the exact `ZooError` class the
    server raised (`error_from_response` reads the body's `type`, then `X-Error-Code`, then the status)."""
    try:
        body = response.read() if isinstance(response, httpx.Response) else response.content
    except (httpx.HTTPError, RuntimeError):  # a stream already closed: the headers still say what went wrong
        body = None
    raise error_from_response(response.status_code, response.headers, body)


class HttpRegistry(Registry):
    """A registry served by `zoo serve` at `url`; `token` (default `ZOO_TOKEN`) authorises writes and private
    models. Pulls without a destination land in `ZOO_CACHE`, in a folder named by the version's commit."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0):
        settings = get_settings()
        self.url = url.rstrip("/")
        self.token = token or (settings.token.get_secret_value() if settings.token else None)
        # an idle connection is dropped well before uvicorn's keep-alive timeout (5 s, httpx's default too), so a POST
        # (never sent twice, see RETRIED) rarely goes out on one the server is closing
        self.http = httpx.Client(base_url=self.url, timeout=timeout, limits=httpx.Limits(keepalive_expiry=2.0),
                                 headers={"Authorization": f"Bearer {self.token}"} if self.token else {})
        self.root = Path(settings.cache).expanduser()

    def __repr__(self) -> str:
        return f"HttpRegistry({self.url!r})"

    # Requests that may be sent twice: a server may close an idle keep-alive connection just as a request goes out
    # on it ("Server disconnected without sending a response"); browsers and urllib3 then retry on a new one. A
    # blob PUT is idempotent too (content-addressed), once its body is rewound. A POST is never sent twice.
    RETRIED = ("GET", "HEAD", "PUT")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in (1, 2):
            try:
                return self.http.request(method, path, **kwargs)
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                body = kwargs.get("content")
                if attempt == 2 or method not in self.RETRIED or not _rewind(body):
                    raise ZooError(f"the registry at {self.url} closed the connection without answering: {exc}"
                                   + (" (the request may or may not have taken effect)" if method == "POST" else "")
                                   ) from None
                logger.debug("%s %s: connection closed by the server, retrying once", method, path)
            except httpx.HTTPError as exc:
                raise ZooError(f"cannot reach the registry at {self.url}: {exc}") from None
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            _raise_for(response)
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
            relative, sha256, size = file.relative_to(folder).as_posix(), file_sha256(file), file.stat().st_size
            exists = self._send("HEAD", f"/api/blobs/{sha256}")
            if exists.status_code != 200:  # equal files are stored once: upload only what the server lacks
                with file.open("rb") as handle:
                    self._call("PUT", f"/api/blobs/{sha256}", params={"path": relative}, content=handle,
                               headers={"Content-Length": str(size)})
                logger.debug("uploaded %s (%d bytes) to %s", relative, size, self.url)
            specs.append({"path": relative, "sha256": sha256, "size": size})
        model_path, _ = self._path(model)
        body = {"files": specs, **{k: v for k, v in options.items() if v is not None}}
        info = _info(self._call("POST", f"{model_path}/versions", json=body))
        logger.debug("pushed %s as %s@%s to %s", folder, info.model_id, info.number, self.url)
        return info

    def pull(self, ref: str, dest: str | Path | None = None) -> Path:
        info = self.resolve(ref)
        target = Path(dest).expanduser() if dest else self.root / info.commit
        if folder_complete(target, info.files):
            return target
        # huggingface_hub writes into a folder beside the target (its .cache/huggingface there lets an interrupted
        # pull resume); only a checked, complete set of files is renamed into place.
        staging = target.with_name(f".{target.name}.partial")
        self._snapshot(info, staging)
        shutil.rmtree(staging / ".cache", ignore_errors=True)
        arrived = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
        corrupt = [f["path"] for f in info.files if not file_matches(staging / f["path"], f)]
        if corrupt or arrived != {f["path"] for f in info.files}:
            shutil.rmtree(staging, ignore_errors=True)
            what = f"'{corrupt[0]}' arrived corrupt (sha256 mismatch)" if corrupt else "the files differ from its list"
            raise ZooError(f"pulling {info.model_id}@{info.number} from {self.url}: {what}")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.replace(target)
        logger.debug("pulled %s@%s from %s into %s", info.model_id, info.number, self.url, target)
        return target

    def _snapshot(self, info: VersionInfo, folder: Path) -> None:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError

        try:  # token=False: never send the user's Hugging Face token to a zoo server
            snapshot_download(info.model_id, revision=info.commit, endpoint=self.url, token=self.token or False,
                              local_dir=folder)
        except HfHubHTTPError as exc:
            if exc.response is not None and exc.response.status_code >= 400:
                _raise_for(exc.response)
            raise ZooError(f"cannot pull {info.model_id}@{info.number} from {self.url}: {exc}") from None
        except OSError as exc:  # connection errors of requests and httpx are OSErrors too
            from huggingface_hub import constants

            hint = (" (HF_HUB_OFFLINE is set, and pulls from a zoo server go through huggingface_hub: unset it to "
                    "pull)") if constants.HF_HUB_OFFLINE else ""
            raise ZooError(f"cannot pull {info.model_id}@{info.number} from {self.url}{hint}: {exc}") from None

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

    def attest(self, ref: str, outcome: str, environment: dict[str, Any] | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        model_path, revision = self._path(ref)
        return self._call("POST", f"{model_path}/versions/{revision}/attestations",
                          json={"outcome": outcome, "environment": environment or {}, "details": details or {}})

    def record_rank(self, ref: str, dataset: str, fingerprint: str, by: str, scores: dict[str, float], rank: int,
                    of: int, examples: int) -> dict[str, Any]:
        model_path, revision = self._path(ref)
        return self._call("POST", f"{model_path}/versions/{revision}/rankings",
                          json={"dataset": dataset, "fingerprint": fingerprint, "by": by, "scores": scores,
                                "rank": rank, "of": of, "examples": examples})

    def gc(self, grace: float = GC_GRACE) -> dict[str, int]:
        raise ZooError("gc runs on the server's machine: zoo gc --registry FOLDER")

    def create_token(self, namespace: str, name: str = "default", *, expires_in: float | None = None,
                     read_only: bool = False) -> str:
        raise ZooError("tokens are created on the server's machine: zoo token create NAMESPACE --registry FOLDER")

    def list_tokens(self, namespace: str | None = None) -> list[dict[str, Any]]:
        raise ZooError("tokens are listed on the server's machine: zoo token list --registry FOLDER")

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        raise ZooError("tokens are revoked on the server's machine: zoo token revoke ID --registry FOLDER")


HEX40, HEX64 = re.compile(r"[0-9a-f]{40}"), re.compile(r"[0-9a-f]{64}")


def _info(data: dict[str, Any]) -> VersionInfo:
    """A version as the server described it, checked as the server checks what it stores: the commit id names a
    folder and every file path a file on this machine, so a hostile or intercepted server must not be able to
    point them outside the target (`../`, absolute paths, a commit of `../../dir`)."""
    if not isinstance(data, dict):
        raise ZooError(f"the registry sent a version this client cannot read: {str(data)[:200]}")
    known = {f.name for f in dataclasses.fields(VersionInfo)}
    try:  # fields a newer server added are left out, so this client keeps working against it
        info = VersionInfo(**{key: value for key, value in data.items() if key in known})
    except TypeError as exc:
        raise ZooError(f"the registry sent a version this client cannot read: {exc}") from None
    if not isinstance(info.commit, str) or not HEX40.fullmatch(info.commit):
        raise ZooError(f"the registry sent an invalid commit id {info.commit!r} (40 hex digits expected)")
    for entry in info.files:
        path, sha256 = entry.get("path"), entry.get("sha256")
        if not isinstance(path, str) or not isinstance(sha256, str) or not HEX64.fullmatch(sha256):
            raise ZooError(f"the registry sent an invalid file entry {entry!r}")
        try:
            check_path(path)
        except ZooError as exc:
            raise ZooError(f"the registry sent an unsafe file path: {exc}") from None
    try:
        check_tree(entry["path"] for entry in info.files)
    except ZooError as exc:
        raise ZooError(f"the registry sent files that cannot be written: {exc}") from None
    return info
