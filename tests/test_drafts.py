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


def test_a_draft_changes_nothing_others_see_of_its_model(tmp_path):
    """A draft's card must not become its model's description, task, license or tags (everyone who can see the
    model sees those), nor move its 'updated' time; publishing the draft applies them."""
    app = create_app(tmp_path / "registry")
    service = app.state.service
    card = (b"---\nlicense: apache-2.0\npipeline_tag: image-classification\ntags: [secret-project]\n---\n"
            b"# d\n\nThe confidential plan.\n")
    service.publish("acme/d", [service.store_file([card], "README.md"), service.store_file([b"x"], "w.bin")],
                    status="draft")
    with TestClient(app) as client:
        shown = client.get("/api/models/acme/d").json()
        assert not shown["description"] and shown["license"] is None and shown["task"] is None
        assert "secret-project" not in shown.get("tags", [])
        assert "confidential" not in client.get("/acme/d").text
        assert client.get("/api/search", params={"q": "confidential"}).json()["total"] == 0
        with pytest.raises(Exception, match="a draft cannot set the model's description or tags"):
            service.publish("acme/d", [service.store_file([b"y"], "w.bin")], status="draft", description="secret")
        service.set_status("acme/d@1", "published")
        shown = client.get("/api/models/acme/d").json()
        assert shown["description"] == "The confidential plan." and shown["license"] == "apache-2.0"
        assert shown["task"] == "image-classification" and "secret-project" in shown["tags"]
