"""The write path's shortcuts keep its answers: a publish answers without reading its version back (and primes the
read cache), an upload's lease is one upsert, and SQLite writers of one process queue on a lock rather than on
SQLite's busy handler. SQLite and PostgreSQL (when the test server runs)."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta

from sqlmodel import Session, select

from tests.cards import complete_card
from zoo_core.registry.models import Upload, utcnow
from zoo_core.registry.service import RegistryService
from zoo_core.registry.types import FileSpec


def store(service: RegistryService, name: str, tag: str = "a", extra: str = "", weights: bytes = b"w") -> list:
    files = {"README.md": complete_card(name, license="mit", tags=f"writes, {tag}", body="A model for the write tests.",
                                         metadata=extra).encode(),
             "config.json": json.dumps({"backbone": {"name": "resnet18", "family": "resnet"}}).encode(),
             "metrics.json": json.dumps({"accuracy": 0.9, "loss": 0.25}).encode(),
             "recipe.yaml": b"strategy: {name: lora}\n",
             "model.safetensors": weights + name.encode()}
    return [service.store_file([data], path, size=len(data)) for path, data in files.items()]


def test_a_publish_answers_what_resolve_reads_back(database_url, tmp_path):
    service = RegistryService(database_url, tmp_path / "blobs")
    answers = {
        "acme/base@1": service.publish("acme/base", store(service, "base", extra="base_model: hf:bert-base\n")),
        "acme/base@2": service.publish("acme/base", store(service, "base", tag="b"), status="draft"),
        "acme/child@1": service.publish("acme/child", store(service, "child"), parent="acme/base@1",
                                        relation="adapter"),
        "acme/child@2": service.publish("acme/child", store(service, "child", weights=b"v2"),
                                        parent="zoo:acme/child@1"),
        "acme/empty@1": service.publish("acme/empty", []),  # a version of no files (a Hub commit may make one)
    }
    assert answers["acme/child@1"].parents == [{"ref": "acme/base@1", "relation": "adapter"}]
    assert answers["acme/base@1"].parents == [{"ref": "hf:bert-base", "relation": "finetune"}]
    assert answers["acme/base@1"].aliases == ["latest"] and answers["acme/base@2"].aliases == []
    fresh = RegistryService(database_url, tmp_path / "blobs")  # nothing cached: everything read from the database
    for ref, answer in answers.items():
        for reader in (service, fresh):
            resolved = reader.resolve(ref).as_dict()
            # `latest` has moved on from the first versions since they were published
            assert answer.as_dict() | {"aliases": resolved["aliases"]} == resolved, (ref, reader is fresh)
    assert fresh.resolve("acme/child@2").aliases == ["latest"]
    assert [v.metrics for v in fresh.versions("acme/child")] == [{"accuracy": 0.9, "loss": 0.25}] * 2
    assert fresh.lineage("acme/child@2", "ancestors")["nodes"]
    for svc in (service, fresh):
        svc.engine.dispose()


def test_an_upload_lease_is_one_row_renewed_by_each_upload(database_url, tmp_path):
    service = RegistryService(database_url, tmp_path / "blobs")
    digest = hashlib.sha256(b"bytes").hexdigest()
    service.record_upload("acme", digest, lease=60)
    service.record_upload("acme", digest, lease=3600)
    service.record_upload("other", digest, lease=60)
    errors: list[BaseException] = []

    def renew() -> None:  # the same owner uploading the same bytes at once: each renews, none fails
        try:
            service.record_upload("acme", digest, lease=7200)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=renew) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(service.engine) as session:
        rows = {row.owner: row for row in session.exec(select(Upload).where(Upload.sha256 == digest))}
    assert sorted(rows) == ["acme", "other"]
    expires = rows["acme"].expires_at.replace(tzinfo=None)
    assert expires > (utcnow() + timedelta(seconds=7000)).replace(tzinfo=None)
    assert service.leased_blobs() == {digest}
    service.engine.dispose()


def test_concurrent_writes_of_one_process_all_land(database_url, tmp_path):
    """16 threads each publishing a version and moving an alias to it (half with set_alias, half in the publish's
    own transaction): every version numbered once, every move recorded, no error (on SQLite the process's writers
    queue on its write lock; on PostgreSQL publishes to one model take its row lock in turn)."""
    service = RegistryService(database_url, tmp_path / "blobs")
    shared = store(service, "m")[:-1]
    errors: list[BaseException] = []
    published: list[int] = []

    def write(k: int) -> None:
        try:
            weights = service.store_file([f"weights {k}".encode()], "model.safetensors")
            files = [*shared, FileSpec(weights.path, weights.sha256, weights.size)]
            if k % 2:
                info = service.publish("acme/m", files)
                service.set_alias("acme/m", "production", info.number)
            else:
                info = service.publish("acme/m", files, aliases=["production"])
            published.append(info.number)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(published) == list(range(1, 17))
    assert [v.number for v in service.versions("acme/m")] == list(range(1, 17))
    moves = service.alias_history("acme/m")
    assert len([e for e in moves if e["alias"] == "production"]) == 16
    assert len([e for e in moves if e["alias"] == "latest"]) == 16
    service.engine.dispose()


def test_the_one_query_download_serves_and_refuses_as_the_full_resolution(tmp_path):
    """Downloads find their file in one query (file_lookup.py); what it does not serve falls through to the full
    resolution, so every refusal keeps its error: yanked, private, a draft, a missing file or revision."""
    from fastapi.testclient import TestClient

    from registry_server.app import create_app

    app = create_app(tmp_path / "registry", card_policy="off")  # aliases without a card
    service = app.state.service
    v1 = service.publish("acme/m", [service.store_file([b"one"], "w.bin")])
    service.publish("acme/m", [service.store_file([b"two"], "w.bin")])
    service.publish("acme/m", [service.store_file([b"three"], "w.bin")], status="draft")
    service.set_alias("acme/m", "stable", 1)
    service.publish("acme/gone", [service.store_file([b"yanked"], "w.bin")])
    service.set_status("acme/gone@1", "yanked", "broken")
    service.publish("acme/secret", [service.store_file([b"private"], "w.bin")], visibility="private")
    token = {"Authorization": f"Bearer {service.create_token('acme')}"}
    with TestClient(app) as client:
        for revision, body in (("main", b"two"), ("1", b"one"), ("v2", b"two"), ("stable", b"one"),
                               (v1.commit, b"one")):
            answer = client.get(f"/acme/m/resolve/{revision}/w.bin")
            assert (answer.status_code, answer.content) == (200, body), revision
            assert answer.headers["X-Repo-Commit"] == service.resolve(
                f"acme/m@{'latest' if revision == 'main' else revision}").commit
        assert client.get("/api/models/acme/m/versions/stable/files/w.bin").content == b"one"
        ranged = client.get("/acme/m/resolve/main/w.bin", headers={"Range": "bytes=1-"})
        assert (ranged.status_code, ranged.content, ranged.headers["Content-Range"]) == (206, b"wo", "bytes 1-2/3")
        refused = {"/acme/gone/resolve/1/w.bin": 404, "/api/models/acme/gone/versions/1/files/w.bin": 404,
                   "/acme/secret/resolve/main/w.bin": 401,  # the Hub answers 401 there "/acme/m/resolve/3/w.bin": 404,
                   "/acme/m/resolve/main/nothing.bin": 404, "/acme/m/resolve/9/w.bin": 404,
                   "/api/models/acme/m/versions/3/files/w.bin": 404}
        for url, status in refused.items():
            answer = client.get(url)
            assert answer.status_code == status, url
            assert answer.headers["X-Error-Code"], url  # the full resolution's precise error
        assert "yanked" in client.get("/acme/gone/resolve/1/w.bin").json()["error"]
        assert client.get("/acme/m/resolve/main/nothing.bin").headers["X-Error-Code"] == "EntryNotFound"
        assert client.get("/acme/secret/resolve/main/w.bin", headers=token).content == b"private"
        assert client.get("/acme/m/resolve/3/w.bin", headers=token).content == b"three"


def test_a_publish_moves_its_aliases_in_the_same_transaction(database_url, tmp_path):
    """`aliases` on a publish: moved with the version (one transaction), each move in the alias history as
    set_alias records it, with set_alias's refusals made before anything is written."""
    from zoo_core.errors import CardError, ForbiddenError, ZooError
    from zoo_core.registry.service import Viewer

    service = RegistryService(database_url, tmp_path / "blobs")
    first = service.publish("acme/m", store(service, "m"), aliases=["production", "staging"])
    assert first.aliases == ["latest", "production", "staging"]
    second = service.publish("acme/m", store(service, "m", weights=b"v2"), aliases=["production", "latest"])
    assert second.aliases == ["latest", "production"]
    fresh = RegistryService(database_url, tmp_path / "blobs")
    assert fresh.resolve("acme/m@production").number == 2 and fresh.resolve("acme/m@staging").number == 1
    assert fresh.resolve("acme/m@2").as_dict() == second.as_dict()
    moves = {(e["alias"], e["from"], e["to"]) for e in fresh.alias_history("acme/m")}
    assert moves == {("latest", None, 1), ("production", None, 1), ("staging", None, 1), ("latest", 1, 2),
                     ("production", 1, 2)}
    assert [r["id"] for r in fresh.search("m")["results"]] == ["acme/m"]  # indexed as set_alias would leave it

    incomplete = [service.store_file([b"---\nlicense: mit\n---\n# m\n"], "README.md")]
    token = Viewer(namespaces=frozenset({"other"}), name="other")
    for refused, error, kwargs in (
            ("an incomplete card", CardError, {"files": incomplete, "aliases": ["production"]}),
            ("a draft", ZooError, {"files": store(service, "m", weights=b"d"), "aliases": ["production"],
                                   "status": "draft"}),
            ("a version-like alias", ZooError, {"files": store(service, "m", weights=b"n"), "aliases": ["v3"]}),
            ("another namespace's token", ForbiddenError, {"files": store(service, "m", weights=b"t"),
                                                          "aliases": ["production"], "viewer": token})):
        files = kwargs.pop("files")
        try:
            service.publish("acme/m", files, **kwargs)
            raise AssertionError(f"published with {refused}")
        except error:
            pass
    assert [v.number for v in fresh.versions("acme/m")] == [1, 2]  # nothing stored by the refusals
    assert len(fresh.alias_history("acme/m")) == 5
    # `latest` alone needs no complete card, as with set_alias
    assert service.publish("acme/m", incomplete, aliases=["latest"]).aliases == ["latest"]
    for svc in (service, fresh):
        svc.engine.dispose()


def test_the_api_publishes_with_aliases(tmp_path):
    """POST .../versions with `aliases`: 201 with them in the answer (VersionOut's shape); a bad alias is a 400
    and stores nothing."""
    from fastapi.testclient import TestClient

    from registry_server.app import create_app
    from registry_server.schemas import VersionOut

    app = create_app(tmp_path / "registry")
    service = app.state.service
    token = {"Authorization": f"Bearer {service.create_token('acme')}"}
    files = []
    with TestClient(app) as client:
        for f in store(service, "m"):  # uploaded by the token's writer: it may publish them
            data = b"".join(service.blobs.read_range(f.sha256))
            assert client.put(f"/api/blobs/{f.sha256}?path={f.path}", content=data, headers=token).status_code == 200
            files.append({"path": f.path, "sha256": f.sha256, "size": f.size})
        answer = client.post("/api/models/acme/m/versions", json={"files": files, "aliases": ["production"]},
                             headers=token)
        assert answer.status_code == 201, answer.text
        assert VersionOut.model_validate(answer.json()).model_dump() == answer.json()
        assert answer.json()["aliases"] == ["latest", "production"]
        assert client.get("/api/models/acme/m/versions/production").json()["number"] == 1
        bad = client.post("/api/models/acme/m/versions", json={"files": files, "aliases": ["7"]}, headers=token)
        assert bad.status_code == 400 and "alias '7'" in bad.json()["error"]
        assert client.post("/api/models/acme/m/versions", json={"files": files, "aliases": ["production"]}
                           ).status_code == 401
    assert [v.number for v in service.versions("acme/m")] == [1]


def test_search_follows_publishes_that_keep_or_change_the_card(database_url, tmp_path):
    """A publish whose card is the same bytes as `latest`'s leaves the model's full-text entry as it is (only its
    search row moves to the new version); a new card, description or tags index it again."""
    service = RegistryService(database_url, tmp_path / "blobs")

    def card(word: str) -> list:
        return [service.store_file([f"---\nlicense: mit\ntags: [a]\n---\n# x\n\nA model.\n\n## More\n\n{word}\n"
                                    .encode()], "README.md")]

    def found(query: str, **filters) -> list:
        return [(r["id"], r["latest"]) for r in service.search(query, **filters)["results"]]

    service.publish("acme/x", card("zebra"))
    service.publish("acme/x", card("zebra"))  # the same card
    assert found("zebra") == [("acme/x", 2)]
    service.publish("acme/x", card("giraffe"))
    assert found("zebra") == [] and found("giraffe") == [("acme/x", 3)]
    service.publish("acme/x", card("giraffe"), tags=["striped"])  # the same card, other tags
    assert found("giraffe", tag="striped") == [("acme/x", 4)] and found("giraffe", tag="a") == []
    service.publish("acme/x", card("giraffe"), description="okapi")  # the same card, another description
    assert found("okapi") == [("acme/x", 5)]
    service.publish("acme/x", card("zebra"), status="draft")  # a draft moves nothing
    assert found("giraffe") == [("acme/x", 5)] and found("zebra") == []
    service.engine.dispose()
