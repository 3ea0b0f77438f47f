"""Conditional answers (strong ETags, If-None-Match -> 304) that never leak: a version's answer changes when its
status or aliases do, and a cached answer is never confirmed to a viewer it was not for. Also `zoo serve
--workers 2` taking concurrent pushes without losing or duplicating a version. Real `zoo serve` on loopback,
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

import zoo_core

CARD = Path(__file__).with_name("test_registry.py")


def checkpoint(folder: Path, name: str) -> Path:
    template = re.search(r'CARD = """(.*?)"""', CARD.read_text(), re.S).group(1)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights of " + name.encode() * 100)
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.9}))
    (folder / "README.md").write_text(template.format(name=name, accuracy=0.9, tag="xray"))
    return folder


def test_version_answers_revalidate_and_change_with_status_and_aliases(server, tmp_path):
    url, admin = server
    acme = zoo_core.open_registry(url, token=admin.create_token("acme"))
    acme.push(checkpoint(tmp_path / "a", "a"), "acme/xray")
    acme.push(checkpoint(tmp_path / "b", "b"), "acme/xray")
    path = f"{url}/api/models/acme/xray/versions/1"
    first = httpx.get(path)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)  # strong: no W/
    assert first.headers["cache-control"] == "public, no-cache" and "immutable" not in first.headers["cache-control"]
    assert first.headers["vary"] == "Authorization"
    again = httpx.get(path, headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    assert httpx.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert httpx.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    for change in (lambda: acme.set_alias("acme/xray", "production", 1), lambda: acme.deprecate("acme/xray@1")):
        change()
        moved = httpx.get(path, headers={"If-None-Match": etag})
        assert moved.status_code == 200 and moved.headers["etag"] != etag
        etag = moved.headers["etag"]
    assert moved.json()["aliases"] == ["production"] and moved.json()["status"] == "deprecated"
    # the model's answer and the Hub's model_info revalidate the same way
    for route in ("/api/models/acme/xray", "/api/models/acme/xray/revision/main"):
        tag = httpx.get(url + route).headers["etag"]
        assert httpx.get(url + route, headers={"If-None-Match": tag}).status_code == 304
        acme.push(checkpoint(tmp_path / f"c{len(route)}", route), "acme/xray")  # `latest` moves: a new answer
        assert httpx.get(url + route, headers={"If-None-Match": tag}).status_code == 200


def test_cached_answers_stay_with_their_viewer(server, tmp_path):
    url, admin = server
    acme_token = admin.create_token("acme")
    acme = zoo_core.open_registry(url, token=acme_token)
    owner = {"Authorization": f"Bearer {acme_token}"}
    other = {"Authorization": f"Bearer {admin.create_token('other')}"}
    acme.push(checkpoint(tmp_path / "s", "s"), "acme/secret", visibility="private")
    acme.push(checkpoint(tmp_path / "p", "p"), "acme/public", parent="acme/secret@1")

    secret = f"{url}/api/models/acme/secret/versions/1"
    private = httpx.get(secret, headers=owner)
    assert private.status_code == 200 and private.headers["cache-control"] == "private, no-cache"
    tag = {"If-None-Match": private.headers["etag"]}
    assert httpx.get(secret, headers={**owner, **tag}).status_code == 304
    # the owner's ETag neither confirms the private answer to anyone else nor tells them the model exists
    assert httpx.get(secret, headers={**other, **tag}).status_code == 404
    assert httpx.get(secret, headers=tag).status_code == 401
    assert httpx.get(secret, headers={**other, "If-None-Match": "*"}).status_code == 404

    # a public version derived from the private one: each viewer gets (and revalidates) its own answer
    public = f"{url}/api/models/acme/public/versions/1"
    mine, theirs = httpx.get(public, headers=owner), httpx.get(public)
    assert mine.json()["parents"][0]["ref"] == "acme/secret@1" and theirs.json()["parents"][0]["ref"] is None
    assert mine.headers["etag"] != theirs.headers["etag"]
    assert mine.headers["cache-control"] == "private, no-cache"
    assert theirs.headers["cache-control"] == "public, no-cache"
    leaked = httpx.get(public, headers={"If-None-Match": mine.headers["etag"]})
    assert leaked.status_code == 200 and "secret" not in leaked.text
    assert httpx.get(public, headers={"If-None-Match": theirs.headers["etag"]}).status_code == 304


def test_two_workers_take_concurrent_pushes_without_losing_a_version(tmp_path, database_url, serve):
    root = tmp_path / "registry"
    url = serve(root, "--workers", "2", env={"ZOO_DATABASE_URL": database_url})
    admin = zoo_core.open_registry(str(root), database_url=database_url)
    token = admin.create_token("acme")
    folders = [checkpoint(tmp_path / f"v{i}", f"v{i}") for i in range(8)]

    def push(folder: Path) -> int:
        return zoo_core.open_registry(url, token=token).push(folder, "acme/busy").number

    with ThreadPoolExecutor(8) as pool:
        numbers = sorted(pool.map(push, folders))
    assert numbers == list(range(1, 9))
    listed = httpx.get(f"{url}/api/models/acme/busy").json()["versions"]
    assert [v["number"] for v in listed] == numbers
    assert len({v["commit"] for v in listed}) == 8
    admin.service.engine.dispose()
