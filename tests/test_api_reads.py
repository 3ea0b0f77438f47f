"""The hot reads (a version by alias, a model's page, the Hub's model_info) are plain dicts encoded by orjson, with no
pydantic round trip (registry_server/caching.py): held here to the response models that document them in OpenAPI,
and to their one or two queries (Server-Timing's count). Real `zoo serve` on loopback, SQLite (reads on the event
loop) and PostgreSQL (reads in the thread pool)."""

from __future__ import annotations

import re

import httpx

import zoo_core
from registry_server.schemas import ModelOut, SearchOut, VersionOut
from tests.test_caching import checkpoint

FINGERPRINT = "a" * 64


def queries(response: httpx.Response) -> int:
    return int(re.search(r'db;dur=[0-9.]+;desc="(\d+) queries"', response.headers["server-timing"]).group(1))


def test_hot_answers_keep_their_documented_shape(server, tmp_path):
    """Every field each schema documents, and nothing it would drop or change: with parents visible, hidden and
    outside the registry, attestations, rankings and several aliases; for the owner and for anyone."""
    url, admin = server
    acme = zoo_core.open_registry(url, token=admin.create_token("acme"))
    acme.push(checkpoint(tmp_path / "s", "s"), "acme/secret", visibility="private")
    acme.push(checkpoint(tmp_path / "b", "b"), "acme/base")
    acme.push(checkpoint(tmp_path / "c1", "c1"), "acme/child", parent="acme/secret@1")
    acme.push(checkpoint(tmp_path / "c2", "c2"), "acme/child", parent="acme/base@1")
    acme.set_alias("acme/child", "production", 2)
    acme.set_alias("acme/child", "staging", 2)
    acme.attest("acme/child@2", "bit-identical", {"torch": "2"}, {"max_diff": 0.0})
    acme.record_rank("acme/child@2", "chest", FINGERPRINT, "logme", {"logme": 0.5, "leep": -1.0}, 1, 3, 100)
    token = {"Authorization": f"Bearer {admin.create_token('acme', 'reader', read_only=True)}"}
    for headers in ({}, token):
        for path, schema in ((f"{url}/api/models/acme/child/versions/production", VersionOut),
                             (f"{url}/api/models/acme/child/versions/1", VersionOut),
                             (f"{url}/api/models/acme/child", ModelOut)):
            answer = httpx.get(path, headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body == schema.model_validate(body).model_dump(mode="json"), path
        for params in ({"q": "child"}, {"facets": "true"}, {"q": "base", "facets": "true", "sort": "name"}):
            answer = httpx.get(f"{url}/api/search", params=params, headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["results"] and body == SearchOut.model_validate(body).model_dump(mode="json"), params
    found = {r["id"]: r for r in httpx.get(f"{url}/api/search", headers=token).json()["results"]}
    assert set(found) == {"acme/secret", "acme/base", "acme/child"}  # the owner's reader sees the private one
    assert "acme/secret" not in {r["id"] for r in httpx.get(f"{url}/api/search").json()["results"]}
    assert [(v["number"], v["aliases"]) for v in found["acme/child"]["versions"]] == [
        (1, []), (2, ["latest", "production", "staging"])]
    assert found["acme/child"]["metrics"] == found["acme/child"]["versions"][1]["metrics"]
    version = httpx.get(f"{url}/api/models/acme/child/versions/production").json()
    assert version["aliases"] == ["latest", "production", "staging"]
    assert version["parents"] == [{"ref": "acme/base@1", "relation": "finetune", "private": False}]
    assert [a["outcome"] for a in version["attestations"]] == ["bit-identical"]
    assert [(r["dataset"], r["rank"], r["of"]) for r in version["rankings"]] == [("chest", 1, 3)]
    hidden = httpx.get(f"{url}/api/models/acme/child/versions/1").json()["parents"]
    assert hidden == [{"ref": None, "relation": "finetune", "private": True}]
    mine = httpx.get(f"{url}/api/models/acme/child/versions/1", headers=token).json()["parents"]
    assert mine == [{"ref": "acme/secret@1", "relation": "finetune", "private": False}]
    page = httpx.get(f"{url}/api/models/acme/child").json()
    assert [(v["number"], v["aliases"]) for v in page["versions"]] == [(1, []), (2, ["latest", "production",
                                                                                      "staging"])]
    assert page["sha"] == version["commit"] and page["zoo"]["aliases"] == version["aliases"]


def test_hot_reads_are_one_or_two_queries_and_see_every_change(server, tmp_path):
    """An alias lookup is one query (aliases and whether there are attestations or rankings come in the same row),
    and a moved alias, a yanked version and a new attestation show on the very next read, through the server that
    did not make the change as through the one that did."""
    url, admin = server
    acme = zoo_core.open_registry(url, token=admin.create_token("acme"))
    for n in (1, 2):
        acme.push(checkpoint(tmp_path / f"v{n}", f"v{n}"), "acme/xray")
    acme.set_alias("acme/xray", "production", 1)
    path = f"{url}/api/models/acme/xray/versions/production"
    httpx.get(path)  # its files, metrics and lineage are now known to this process (they never change)
    answer = httpx.get(path)
    assert (answer.json()["number"], queries(answer)) == (1, 1)
    assert queries(httpx.get(f"{url}/api/models/acme/xray/revision/main")) <= 2
    admin.set_alias("acme/xray", "production", 2)  # embedded: not through this server
    assert httpx.get(path).json()["number"] == 2
    admin.attest("acme/xray@2", "differs", {}, {"why": "seed"})
    assert [a["outcome"] for a in httpx.get(path).json()["attestations"]] == ["differs"]
    admin.yank("acme/xray@2", "broken")
    assert httpx.get(path).status_code == 404  # yanking removed the alias
    assert httpx.get(f"{url}/api/models/acme/xray/versions/2").json()["status"] == "yanked"
    assert httpx.get(f"{url}/api/models/acme/xray/revision/2").status_code == 404  # not served as live
    info = httpx.get(f"{url}/api/models/acme/xray/revision/main").json()
    assert info["zoo"]["version"] == 1
