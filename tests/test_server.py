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
from zoo_core.errors import ZooError
from zoo_core.registry.service import AuthError, CardError, NotFoundError

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
    with pytest.raises(AuthError, match="namespace 'other'"):
        acme.push(make_checkpoint(tmp_path / "u", "u"), "other/model")
    with pytest.raises(NotFoundError):
        zoo_core.open_registry(url).resolve("acme/secret")
    response = httpx.get(f"{url}/api/models/acme/secret/versions/1/files/README.md")
    assert response.status_code == 404 and response.json()["error"] == "ModelNotFoundError"
    assert acme.resolve("acme/secret").number == 1
    assert zoo_core.open_registry(url).search()["total"] == 0


def test_bad_uploads_are_refused_and_leave_no_version(server, tmp_path):
    url, admin = server
    auth = {"Authorization": f"Bearer {admin.create_token('acme')}"}
    data = b"x" * 1000
    digest = hashlib.sha256(data).hexdigest()
    wrong = httpx.put(f"{url}/api/blobs/{'0' * 64}", params={"path": "model.safetensors"}, content=data,
                      headers=auth)
    assert wrong.status_code == 400 and "sha256 mismatch" in wrong.json()["message"]
    escape = httpx.put(f"{url}/api/blobs/{digest}", params={"path": "../../etc/passwd"}, content=data, headers=auth)
    assert escape.status_code == 400 and "not allowed" in escape.json()["message"]
    big = httpx.put(f"{url}/api/blobs/{'1' * 64}", params={"path": "big.bin"}, content=b"y" * 300_000, headers=auth)
    assert big.status_code == 413
    missing = httpx.post(f"{url}/api/models/acme/m/versions", headers=auth,
                         json={"files": [{"path": "model.safetensors", "sha256": digest, "size": 1000}]})
    assert missing.status_code == 400 and "was not uploaded" in missing.json()["message"]
    ok = httpx.put(f"{url}/api/blobs/{digest}", params={"path": "model.safetensors"}, content=data, headers=auth)
    assert ok.status_code == 200
    lying = httpx.post(f"{url}/api/models/acme/m/versions", headers=auth,
                       json={"files": [{"path": "model.safetensors", "sha256": digest, "size": 999}]})
    assert lying.status_code == 400 and "declared 999 bytes" in lying.json()["message"]
    undocumented = httpx.post(f"{url}/api/models/acme/m/versions", headers=auth,
                              json={"files": [{"path": "model.safetensors", "sha256": digest, "size": 1000}]})
    assert undocumented.status_code == 422 and "model card" in undocumented.json()["message"]
    assert httpx.get(f"{url}/api/models/acme/m").status_code == 404
    with pytest.raises(CardError):
        zoo_core.open_registry(url, token=auth["Authorization"][7:]).push(
            make_checkpoint(tmp_path / "c", "c", card="# no sections"), "acme/m")
    assert httpx.get(f"{url}/api/models/acme/m").status_code == 404


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
    part = httpx.get(file_url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == weights[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(weights)}"
    assert httpx.get(file_url, headers={"Range": "bytes=-5"}).content == weights[-5:]
    assert httpx.get(file_url, headers={"Range": f"bytes={len(weights) + 5}-"}).status_code == 416
    assert httpx.get(f"{url}/api/models/acme/files/versions/1/files/nope.bin").status_code == 404
    assert httpx.get(f"{url}/api/models/acme/files/versions/7").status_code == 404
    assert httpx.get(f"{url}/docs").status_code == 200
    assert "/api/models" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_remote_registry_reports_unreachable_server():
    with pytest.raises(ZooError, match="cannot reach the registry"):
        zoo_core.open_registry("http://127.0.0.1:9").resolve("acme/x")  # the discard port: nothing listens
