"""Drafts (versions pushed unpublished) belong to their namespace: its tokens read them, read-only ones included;
anyone else, even of a public model, finds no such version on any read path (zoo API, Hub API, pages, search,
lineage, compare) until it is published."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry_server.app import create_app

CARD = b"---\nlicense: mit\n---\n# m\n\nA model.\n"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    app = create_app(tmp_path_factory.mktemp("drafts"))
    service = app.state.service
    service.publish("acme/m", [service.store_file([CARD], "README.md"), service.store_file([b"v1"], "w.bin")])
    service.publish("acme/m", [service.store_file([CARD], "README.md"), service.store_file([b"v2"], "w.bin")],
                    status="draft", parent="acme/m@1")
    service.publish("acme/d", [service.store_file([b"only a draft"], "w.bin")], status="draft")
    tokens = {"writer": service.create_token("acme"), "read-only": service.create_token("acme", read_only=True),
              "other": service.create_token("other"), "anonymous": None}
    with TestClient(app) as client:
        yield client, service, tokens


DRAFT_READS = ["/api/models/acme/m/versions/2", "/api/models/acme/m/lineage/2", "/api/models/acme/d/versions/1",
               "/api/models/acme/m/versions/2/files/w.bin", "/api/models/acme/m/revision/2",
               "/api/models/acme/m/tree/2", "/acme/m/resolve/2/w.bin", "/api/models/acme/d/revision/v1",
               "/acme/m/v/2", "/acme/d/v/1", "/acme/m/v/2/lineage"]


@pytest.mark.parametrize("who", ["writer", "read-only", "other", "anonymous"])
def test_only_the_namespace_reads_its_drafts(registry, who):
    client, service, tokens = registry
    headers = {"Authorization": f"Bearer {tokens[who]}"} if tokens[who] else {}
    sees = who in ("writer", "read-only")
    for url in DRAFT_READS:
        status = client.get(url, headers=headers).status_code
        assert (status == 200) if sees else (status in (401, 404)), (url, status)
    numbers = [v["number"] for v in client.get("/api/models/acme/m", headers=headers).json()["versions"]]
    assert numbers == ([1, 2] if sees else [1])
    assert len(client.get("/api/models/acme/d", headers=headers).json()["versions"]) == (1 if sees else 0)
    found = client.get("/api/search", params={"q": "m"}, headers=headers).json()["results"]
    listed = next(r for r in found if r["id"] == "acme/m")["versions"]
    assert [v["number"] for v in listed] == ([1, 2] if sees else [1])
    nodes = {n["id"] for n in client.get("/api/models/acme/m/lineage/1", headers=headers).json()["nodes"]}
    assert ("acme/m@2" in nodes) is sees
    compare = client.get("/compare", params={"a": "acme/m@1", "b": "acme/m@2"}, headers=headers)
    assert compare.status_code == (200 if sees else 404)
    page = client.get("/acme/m", headers=headers).text
    assert ("/acme/m/v/2" in page) is sees


def test_a_published_draft_is_public(registry):
    client, service, tokens = registry
    assert client.get("/api/models/acme/d/versions/1").status_code in (401, 404)
    service.set_status("acme/d@1", "published")
    assert client.get("/api/models/acme/d/versions/1").json()["status"] == "published"
    assert client.get("/acme/d/resolve/main/w.bin").content == b"only a draft"
