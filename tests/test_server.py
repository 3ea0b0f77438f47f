"""The registry server, as users meet it: `zoo serve` (real uvicorn) on loopback, spoken to over HTTP with httpx
and through `open_registry("http://...")`."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import httpx
import pytest

import zoo_core
from zoo_core.errors import (
    AuthError,
    ForbiddenError,
    ModelNotFoundError,
    NotFoundError,
    UnknownAliasError,
    ZooError,
)

VENV_BIN = Path(sys.executable).parent
CARD = Path(__file__).with_name("test_registry.py")


@pytest.fixture
def server(tmp_path, database_url, serve):
    """`zoo serve` over a fresh registry; yields (url, the same registry opened embedded, for admin work)."""
    root = tmp_path / "registry"
    url = serve(root, "--max-upload", "200000", env={"ZOO_DATABASE_URL": database_url})
    admin = zoo_core.open_registry(str(root), database_url=database_url)
    yield url, admin
    admin.service.engine.dispose()


def make_checkpoint(folder: Path, name: str, accuracy: float = 0.9, card: str | None = None) -> Path:
    import re

    template = re.search(r'CARD = """(.*?)"""', CARD.read_text(), re.S).group(1)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights of " + name.encode() * 100)
    (folder / "config.json").write_text(json.dumps({"library_name": "transfer-zoo",
                                                    "backbone": {"name": "resnet18", "family": "resnet"}}))
    (folder / "metrics.json").write_text(json.dumps({"accuracy": accuracy}))
    (folder / "README.md").write_text(card if card is not None else
                                      template.format(name=name, accuracy=accuracy, tag="xray"))
    return folder


def error_of(response: httpx.Response, status: int, kind: str, code: str | None = None) -> str:
    """Check an error answer's one shape (JSON body, headers for the Hub's clients); returns its message. `code`:
    the Hub's error code, when the class has one."""
    body = response.json()
    assert (response.status_code, body["type"], body["status"], body["code"]) == (status, kind, status, code or kind)
    assert response.headers["x-error-message"] == " ".join(body["error"].split()).encode("ascii", "replace").decode()
    assert response.headers["x-error-code"] == body["code"]
    return body["error"]


def test_push_search_lineage_load_through_http(server, tmp_path, monkeypatch):
    url, admin = server
    token = admin.create_token("acme")
    remote = zoo_core.open_registry(url, token=token)
    v1 = remote.push(make_checkpoint(tmp_path / "a", "a"), "acme/xray", parent="torchvision:resnet18.IMAGENET1K_V1")
    v2 = remote.push(make_checkpoint(tmp_path / "b", "b", 0.95), "acme/xray", parent="acme/xray@1")
    assert (v1.number, v2.number) == (1, 2) and v2.aliases == ["latest"]
    remote.set_alias("acme/xray", "production", 1)
    anonymous = zoo_core.open_registry(url)
    found = anonymous.search("xray", metric=("accuracy", ">=", 0.9))
    assert found["total"] == 1
    assert found["results"][0]["versions"][0]["aliases"] == ["production"]
    graph = anonymous.lineage("acme/xray@2", "ancestors")
    assert [n["id"] for n in graph["nodes"]] == ["torchvision:resnet18.IMAGENET1K_V1", "acme/xray@1", "acme/xray@2"]
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    pulled = zoo_core.open_registry(url).pull("acme/xray@production")
    assert (pulled / "model.safetensors").read_bytes() == (tmp_path / "a" / "model.safetensors").read_bytes()
    assert [h["alias"] for h in anonymous.alias_history("acme/xray")] == ["latest", "latest", "production"]


def test_tokens_namespaces_and_private_models(server, tmp_path):
    url, admin = server
    acme = zoo_core.open_registry(url, token=admin.create_token("acme"))
    acme.push(make_checkpoint(tmp_path / "s", "s"), "acme/secret", visibility="private")
    with pytest.raises(AuthError, match="writing needs a token"):
        zoo_core.open_registry(url).push(make_checkpoint(tmp_path / "t", "t"), "acme/other")
    with pytest.raises(AuthError, match="invalid token"):
        zoo_core.open_registry(url, token="zoo_wrong").resolve("acme/secret")
    with pytest.raises(ForbiddenError, match="namespace 'other'"):
        acme.push(make_checkpoint(tmp_path / "u", "u"), "other/model")
    with pytest.raises(ModelNotFoundError):
        zoo_core.open_registry(url).resolve("acme/secret")
    # as on the Hub: not found answers 401 to anonymous callers (a token might show it), 404 to others
    error_of(httpx.get(f"{url}/api/models/acme/secret/versions/1/files/README.md"), 401, "ModelNotFoundError",
             "RepoNotFound")
    other = {"Authorization": f"Bearer {admin.create_token('other')}"}
    error_of(httpx.get(f"{url}/api/models/acme/secret", headers=other), 404, "ModelNotFoundError", "RepoNotFound")
    assert acme.resolve("acme/secret").number == 1
    assert zoo_core.open_registry(url).search()["total"] == 0


def test_bad_uploads_are_refused_and_leave_no_version(server, tmp_path):
    url, admin = server
    auth = {"Authorization": f"Bearer {admin.create_token('acme')}"}
    data = b"x" * 1000
    digest = hashlib.sha256(data).hexdigest()
    wrong = httpx.put(f"{url}/api/blobs/{'0' * 64}", params={"path": "model.safetensors"}, content=data,
                      headers=auth)
    assert "sha256 mismatch" in error_of(wrong, 400, "IntegrityError")
    escape = httpx.put(f"{url}/api/blobs/{digest}", params={"path": "../../etc/passwd"}, content=data, headers=auth)
    assert "not allowed" in error_of(escape, 400, "ZooError")
    big = httpx.put(f"{url}/api/blobs/{'1' * 64}", params={"path": "big.bin"}, content=b"y" * 300_000, headers=auth)
    assert "upload limit" in error_of(big, 413, "UploadTooLargeError")

    def streamed():  # no Content-Length: the limit is found while receiving
        yield b"y" * 150_000
        yield b"y" * 150_000

    chunked = httpx.put(f"{url}/api/blobs/{'1' * 64}", params={"path": "big.bin"}, content=streamed(), headers=auth)
    assert "upload limit" in error_of(chunked, 413, "UploadTooLargeError")
    missing = httpx.post(f"{url}/api/models/acme/m/versions", headers=auth,
                         json={"files": [{"path": "model.safetensors", "sha256": digest, "size": 1000}]})
    assert "was not uploaded" in error_of(missing, 400, "ZooError")
    ok = httpx.put(f"{url}/api/blobs/{digest}", params={"path": "model.safetensors"}, content=data, headers=auth)
    assert ok.status_code == 200
    lying = httpx.post(f"{url}/api/models/acme/m/versions", headers=auth,
                       json={"files": [{"path": "model.safetensors", "sha256": digest, "size": 999}]})
    assert "declared 999 bytes" in error_of(lying, 400, "IntegrityError")
    assert httpx.get(f"{url}/api/models/acme/m", headers=auth).status_code == 404


def test_downloads_support_range_and_etag(server, tmp_path):
    url, admin = server
    folder = make_checkpoint(tmp_path / "a", "a")
    zoo_core.open_registry(url, token=admin.create_token("acme")).push(folder, "acme/files")
    weights = (folder / "model.safetensors").read_bytes()
    file_url = f"{url}/api/models/acme/files/versions/latest/files/model.safetensors"
    full = httpx.get(file_url)
    assert full.status_code == 200 and full.content == weights
    assert full.headers["etag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
    assert httpx.get(file_url, headers={"If-None-Match": full.headers["etag"]}).status_code == 304
    assert httpx.get(file_url, headers={"If-None-Match": "*"}).status_code == 304  # any current file matches *
    assert httpx.get(file_url, headers={"If-None-Match": '"' + "0" * 64 + '"'}).status_code == 200
    part = httpx.get(file_url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == weights[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(weights)}"
    assert httpx.get(file_url, headers={"Range": "bytes=-5"}).content == weights[-5:]
    assert httpx.get(file_url, headers={"Range": f"bytes={len(weights) + 5}-"}).status_code == 416
    error_of(httpx.get(f"{url}/api/models/acme/files/versions/1/files/nope.bin"), 404, "EntryNotFoundError",
             "EntryNotFound")
    error_of(httpx.get(f"{url}/api/models/acme/files/versions/7"), 404, "RevisionNotFoundError", "RevisionNotFound")
    assert httpx.get(f"{url}/docs").status_code == 200
    spec = httpx.get(f"{url}/openapi.json").json()
    assert "/api/models" in spec["paths"]
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)), ids  # a client generator names a function by each
    # /docs shows the answers' schemas, the one error shape and the bearer-token scheme
    search = spec["paths"]["/api/search"]["get"]
    assert search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchOut")
    assert search["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert {"token": []} in spec["paths"]["/api/models/{namespace}/{name}/versions"]["post"]["security"]
    version = spec["components"]["schemas"]["VersionOut"]["properties"]
    assert {"model_id", "number", "commit", "files", "parents", "aliases"} <= set(version)


def test_remote_registry_reports_unreachable_server():
    with pytest.raises(ZooError, match="cannot reach the registry"):
        zoo_core.open_registry("http://127.0.0.1:9").resolve("acme/x")  # the discard port: nothing listens


def test_every_error_is_answered_in_one_shape_by_its_class(server, tmp_path):
    url, admin = server
    acme = {"Authorization": f"Bearer {admin.create_token('acme')}"}
    zoo_core.open_registry(url, token=acme["Authorization"][7:]).push(make_checkpoint(tmp_path / "a", "a"), "acme/m")
    publish = {"files": [{"path": "x.bin", "sha256": "0" * 64, "size": 1}]}
    error_of(httpx.post(f"{url}/api/models/acme/m/versions", json=publish), 401, "AuthError")
    error_of(httpx.post(f"{url}/api/models/acme/m/versions", json=publish,
                        headers={"Authorization": "Basic abc"}), 401, "AuthError")
    error_of(httpx.get(f"{url}/api/models/acme/m", headers={"Authorization": "Bearer zoo_wrong"}), 401, "AuthError")
    error_of(httpx.post(f"{url}/api/models/other/m/versions", json=publish, headers=acme), 403, "ForbiddenError")
    error_of(httpx.post(f"{url}/api/repos/create", json={"organization": "acme", "name": "m"}, headers=acme), 409,
             "ConflictError")
    error_of(httpx.get(f"{url}/api/models/acme/m/versions/nosuch"), 404, "UnknownAliasError", "RevisionNotFound")
    # what the web framework refuses takes the same shape: validation (422), no route (404), wrong method (405)
    invalid = httpx.get(f"{url}/api/search", params={"page": "second"})
    assert "page" in error_of(invalid, 422, "RequestError") and invalid.json()["detail"][0]["loc"] == ["query", "page"]
    error_of(httpx.get(f"{url}/api/nothing-here"), 404, "NotFoundError")
    wrong_method = httpx.delete(f"{url}/api/search")
    error_of(wrong_method, 405, "RequestError")
    assert wrong_method.headers["allow"] == "GET"


def test_the_client_raises_the_servers_error_class_with_its_suggestions(server, tmp_path):
    url, admin = server
    remote = zoo_core.open_registry(url, token=admin.create_token("acme"))
    remote.push(make_checkpoint(tmp_path / "a", "a"), "acme/xray")
    remote.set_alias("acme/xray", "production", 1)
    with pytest.raises(UnknownAliasError, match="did you mean production") as caught:
        zoo_core.open_registry(url).resolve("acme/xray@productoin")
    assert caught.value.suggestions == ["production"] and caught.value.status == 404
    with pytest.raises(ModelNotFoundError, match="did you mean acme/xray") as missing:
        zoo_core.open_registry(url).resolve("acme/xary")
    assert isinstance(missing.value, NotFoundError) and missing.value.status == 401  # anonymous


def test_unknown_models_suggest_only_names_the_caller_can_see(server, tmp_path):
    url, admin = server
    token = admin.create_token("lab")
    lab = zoo_core.open_registry(url, token=token)
    lab.push(make_checkpoint(tmp_path / "s", "s"), "lab/secret-bert", visibility="private")
    lab.push(make_checkpoint(tmp_path / "p", "p"), "lab/public-bert")
    with pytest.raises(ModelNotFoundError) as anonymous:
        zoo_core.open_registry(url).resolve("lab/secret-bertt")
    assert "secret-bert" not in str(anonymous.value).replace("lab/secret-bertt", "")
    assert anonymous.value.suggestions == []
    assert httpx.get(f"{url}/api/models/lab/secret-bertt").json()["suggestions"] == []
    with pytest.raises(ModelNotFoundError, match=r"did you mean lab/secret-bert\?") as owner:
        lab.resolve("lab/secret-bertt")
    assert owner.value.suggestions == ["lab/secret-bert"]
    with pytest.raises(ModelNotFoundError, match=r"did you mean lab/public-bert\?"):
        zoo_core.open_registry(url).resolve("lab/publc-bert")


@pytest.mark.parametrize("commit, path", [("../../escape", "model.safetensors"), ("a" * 40, "../../escape.txt"),
                                          ("a" * 40, "/tmp/zoo-escape.txt"), ("a" * 40, "x/../../y")])
def test_a_hostile_server_cannot_make_the_client_write_outside_its_target(tmp_path, monkeypatch, commit, path):
    """The client checks every commit id and file path a server sends, exactly as the server checks what it stores,
    before anything is written: a real (hostile) HTTP server on loopback answers with an escaping version."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    version = {"model_id": "acme/x", "number": 1, "status": "published", "commit": commit,
               "created_at": "2026-01-01T00:00:00", "created_by": None, "backbone": None, "family": None,
               "strategy": None, "metrics": {}, "aliases": ["latest"],
               "files": [{"path": path, "size": 3, "sha256": "b" * 64}]}

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            body = json.dumps(version).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache = tmp_path / "deep" / "cache"
    monkeypatch.setenv("ZOO_CACHE", str(cache))
    try:
        with pytest.raises(ZooError, match="the registry sent an (invalid commit id|unsafe file path)"):
            zoo_core.open_registry(f"http://127.0.0.1:{server.server_port}").pull("acme/x")
    finally:
        server.shutdown()
    assert not (tmp_path / "escape").exists() and not (tmp_path / "deep" / "escape.txt").exists()
    assert not Path("/tmp/zoo-escape.txt").exists() and not cache.exists()  # nothing written at all


def test_lineage_never_reveals_a_private_parent(server, tmp_path):
    """A token holder cannot graft a version onto someone's private model (nor learn it exists), and a public version
    its owner derived from a private one names "a private model" to everyone else: JSON, Hub info, web, CLI."""
    url, admin = server
    acme = zoo_core.open_registry(url, token=admin.create_token("acme"))
    evil = zoo_core.open_registry(url, token=admin.create_token("evil"))
    acme.push(make_checkpoint(tmp_path / "s", "s"), "acme/secret", visibility="private")
    with pytest.raises(NotFoundError) as probing:
        evil.push(make_checkpoint(tmp_path / "e", "e"), "evil/graft", parent="acme/secret@1")
    assert str(probing.value) == "model 'acme/secret' not found"  # the same answer as for a model that never was
    with pytest.raises(NotFoundError):
        evil.resolve("evil/graft")  # nothing was stored
    acme.push(make_checkpoint(tmp_path / "p", "p"), "acme/public", parent="acme/secret@1")
    assert acme.resolve("acme/public").parents == [{"ref": "acme/secret@1", "relation": "finetune",
                                                    "private": False}]
    for who in (zoo_core.open_registry(url), evil):
        assert who.resolve("acme/public").parents == [{"ref": None, "relation": "finetune", "private": True}]
    hub = httpx.get(f"{url}/api/models/acme/public/revision/main").json()
    page = httpx.get(f"{url}/acme/public", headers={"Accept": "text/html"}).text
    assert "a private model" in page
    assert "secret" not in json.dumps(hub) and "secret" not in page
    assert "secret" not in json.dumps(httpx.get(f"{url}/api/models/acme/public/lineage/1").json())


def test_the_client_reads_a_version_from_a_newer_server_that_added_fields():
    from zoo_core.remote import _info

    version = {"model_id": "acme/x", "number": 1, "status": "published", "commit": "a" * 40,
               "created_at": "2026-01-01T00:00:00", "created_by": None, "backbone": None, "family": None,
               "strategy": None, "metrics": {}, "aliases": ["latest"], "files": [], "a_field_from_the_future": [1]}
    assert _info(version).model_id == "acme/x"
    with pytest.raises(ZooError, match="cannot read"):
        _info({"metrics": {}})  # required fields missing
    with pytest.raises(ZooError, match="cannot read"):
        _info(["not", "a", "version"])
