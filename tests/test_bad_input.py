"""Hostile and malformed input, route by route: every case is answered 4xx with a message (a JSON `error`, the
error page's text, or `X-Error-Message` for HEAD), never a 500 or a dropped connection, and stores nothing: the
registry's versions, models, aliases, uploads, attestations and blobs on disk are the same before and after.

One server (FastAPI's TestClient over one registry) per module and database: SQLite always, PostgreSQL when
ZOO_TEST_POSTGRES_URL is set (over-long fields and NUL characters fail only there unless refused first).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from registry_server.app import create_app
from zoo_core.registry.models import Alias, AliasEvent, Attestation, Model, Namespace, Upload, Version

CARD = b"""---
license: mit
pipeline_tag: image-classification
---
# m

A model for the bad-input tests.
"""
HUGE = "16000000000000000000000"  # beyond every database's integers
SHA = "0" * 64


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def registry(request, tmp_path_factory, new_postgres_database):
    """(client, service, tokens): one app over a registry holding acme/m@1 (published), acme/d@1 (a draft) and
    other/priv@1 (private)."""
    root = tmp_path_factory.mktemp("bad-input")
    if request.param == "sqlite":
        yield from _registry(root, f"sqlite:///{root / 'registry.db'}")
        return
    with new_postgres_database() as url:
        yield from _registry(root, url)


def _registry(root, url):
    app = create_app(root, database_url=url, max_upload=100_000)
    service = app.state.service
    tokens = {"W": service.create_token("acme"), "RO": service.create_token("acme", "ro", read_only=True),
              "OTHER": service.create_token("other")}
    files = [service.store_file([CARD], "README.md"), service.store_file([b"weights"], "model.safetensors"),
             service.store_file([b"omega"], "Ωmega.txt"),
             service.store_file([json.dumps({"accuracy": 0.9}).encode()], "metrics.json")]
    service.publish("acme/m", files)
    service.publish("acme/d", [service.store_file([b"draft weights"], "model.safetensors")], status="draft")
    service.publish("other/priv", [service.store_file([b"private"], "model.safetensors")], visibility="private")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, service, tokens
    service.engine.dispose()


COUNTED = (Namespace, Model, Version, AliasEvent, Upload, Attestation)


def stored(service) -> dict:
    """Everything a request could have stored (in two queries and a listing of the blob store)."""
    with Session(service.engine) as session:
        counts = session.exec(select(*(select(func.count()).select_from(t).scalar_subquery() for t in COUNTED))).one()
        rows = session.exec(select(Version.id, Version.status, Version.status_reason, Alias.name)
                            .join(Alias, Alias.version_id == Version.id, isouter=True)).all()
    return {"counts": tuple(counts), "versions": sorted(rows, key=str), "blobs": sorted(service.blobs.all())}


def ndjson(*operations) -> bytes:
    header = {"key": "header", "value": {"summary": "bad input", "description": ""}}
    return "\n".join(op if isinstance(op, str) else json.dumps(op) for op in (header, *operations)).encode()


def inline(path: str, data: bytes) -> dict:
    return {"key": "file", "value": {"content": base64.b64encode(data).decode(), "path": path,
                                     "encoding": "base64"}}


def card(front: str) -> dict:
    return inline("README.md", f"---\n{front}\n---\n# m\n\nA card.\n".encode())


# (id, method, url, keyword arguments for the request; `auth` names a token)
CASES: list[tuple[str, str, str, dict]] = []


def case(case_id: str, method: str, url: str, **kwargs) -> None:
    CASES.append((case_id, method, url, kwargs))


W = {"auth": "W"}
BAD_NAMES = {"newline": "m%0A", "nul": "m%00", "dot-first": ".m", "dash-first": "-m", "long": "m" * 97,
             "space": "m%20x", "accent": "%C3%A9t%C3%A9", "tab": "m%09"}
BAD_REVISIONS = {"huge": HUGE, "v-huge": "v" + HUGE, "superscript": "%C2%B2", "unknown-alias": "nope",
                 "unknown-commit": "a" * 40, "zero": "0", "draft-for-anonymous": "@draft"}


def _revision_url(route: str, revision: str) -> str:
    model = "acme/d" if revision == "@draft" else "acme/m"
    return route.format(model=model, rev="1" if revision == "@draft" else revision)


# -- the zoo's JSON API ----------------------------------------------------------------------------------------------
for metric in ("accuracy", "accuracy>>1", "accuracy>=nan", "accuracy>=inf", "accuracy>=x", ">=1", "a b>=1"):
    case(f"search-metric-{metric}", "GET", "/api/search", params={"metric": metric})
for page in ("0", "-1", "1.6e22", HUGE, "x", ""):
    case(f"search-page-{page[:8]}", "GET", "/api/search", params={"page": page})
for per_page in ("0", "-1", "x"):
    case(f"search-per_page-{per_page}", "GET", "/api/search", params={"per_page": per_page})
for key, value in (("documented", "maybe"), ("reproduced", "x"), ("q", "a\x00b"), ("sort", "name\x00"),
                   ("descendant_of", ".."), ("descendant_of", "a/b/c"), ("descendant_of", "acme/nothing"),
                   ("descendant_of", "other/priv"), ("tag", "\x00")):
    case(f"search-{key}-{value!r}", "GET", "/api/search", params={key: value})
for label, bad in BAD_NAMES.items():
    for kind, route in (("model", "/api/models/acme/{}"), ("version", "/api/models/acme/{}/versions/1"),
                        ("lineage", "/api/models/acme/{}/lineage/1"),
                        ("history", "/api/models/acme/{}/aliases/history"), ("namespace", "/api/models/{}/m")):
        case(f"name-{label}-{kind}", "GET", route.format(bad))
case("namespace-65-characters", "GET", "/api/models/" + "a" * 65 + "/m")
case("private-model-anonymous", "GET", "/api/models/other/priv")
case("private-model-other-token", "GET", "/api/models/other/priv/versions/1", auth="W")
for label, revision in BAD_REVISIONS.items():
    for kind, route in (("version", "/api/models/{model}/versions/{rev}"),
                        ("lineage", "/api/models/{model}/lineage/{rev}"),
                        ("download", "/api/models/{model}/versions/{rev}/files/model.safetensors")):
        case(f"revision-{label}-{kind}", "GET", _revision_url(route, revision))
case("lineage-direction", "GET", "/api/models/acme/m/lineage/1", params={"direction": "sideways"})
case("download-missing-file", "GET", "/api/models/acme/m/versions/1/files/nothing.bin")
case("download-traversal", "GET", "/api/models/acme/m/versions/1/files/..%2F..%2Fregistry.db")
case("download-range-bad", "GET", "/api/models/acme/m/versions/1/files/model.safetensors",
     headers={"Range": "bytes=9-3"})
case("download-range-beyond", "GET", "/api/models/acme/m/versions/1/files/model.safetensors",
     headers={"Range": "bytes=100-"})
case("download-head-missing", "HEAD", "/api/models/acme/m/versions/1/files/nothing.bin")
# authentication
case("auth-basic", "GET", "/api/models/acme/m", headers={"Authorization": "Basic eDp5"})
case("auth-bearer-empty", "GET", "/api/models/acme/m", headers={"Authorization": "Bearer "})
case("auth-bearer-unknown", "GET", "/api/models/acme/m", headers={"Authorization": "Bearer zoo_nope"})
case("auth-bearer-nul", "GET", "/api/models/acme/m", headers={"Authorization": "Bearer zoo_\x01"})
# uploads
for label, sha in (("short", "0" * 63), ("upper", "A" * 64), ("word", "xyz"), ("traversal", "..%2F..%2Fx")):
    case(f"blob-put-sha-{label}", "PUT", f"/api/blobs/{sha}", params={"path": "a.bin"}, content=b"x", auth="W")
case("blob-put-mismatch", "PUT", f"/api/blobs/{SHA}", params={"path": "a.bin"}, content=b"not zeros", auth="W")
case("blob-put-anonymous", "PUT", f"/api/blobs/{SHA}", params={"path": "a.bin"}, content=b"x")
case("blob-put-no-path", "PUT", f"/api/blobs/{SHA}", content=b"x", auth="W")
case("blob-put-too-large", "PUT", f"/api/blobs/{SHA}", params={"path": "a.bin"}, content=b"x" * 100_001, auth="W")
case("blob-head-anonymous", "HEAD", f"/api/blobs/{SHA}")
# publishing
PUBLISH = "/api/models/acme/new/versions"
README_SHA = "__README__"  # replaced by the stored README's sha256
for label, body in {
    "empty": b"", "not-json": b"{", "list": b"[]", "files-not-list": b'{"files": 3}',
    "file-no-sha": b'{"files": [{"path": "a", "size": 1}]}',
    "sha-not-hex": json.dumps({"files": [{"path": "a", "sha256": "z" * 64, "size": 1}]}).encode(),
    "never-uploaded": json.dumps({"files": [{"path": "a", "sha256": "1" * 64, "size": 1}]}).encode(),
    "size-wrong": json.dumps({"files": [{"path": "README.md", "sha256": README_SHA, "size": 1}]}).encode(),
    "size-negative": json.dumps({"files": [{"path": "README.md", "sha256": README_SHA, "size": -1}]}).encode(),
    "size-huge": json.dumps({"files": [{"path": "README.md", "sha256": README_SHA, "size": int(HUGE)}]}).encode(),
}.items():
    case(f"publish-{label}", "POST", PUBLISH, content=body, auth="W", headers={"Content-Type": "application/json"})
for label, path in (("traversal", "../x"), ("absolute", "/etc/x"), ("dot", "a/./b"), ("empty", ""),
                    ("backslash", "a\\b"), ("newline", "a\nb"), ("nul", "a\x00b"), ("c1", "a\x85b"),
                    ("bidi", "a\u202eb"), ("hash", "a#b"), ("long", "a" * 256)):
    case(f"publish-path-{label}", "POST", PUBLISH, auth="W",
         json={"files": [{"path": path, "sha256": README_SHA, "size": len(CARD)}]})


def _publish(**fields) -> dict:
    return {"json": {"files": [{"path": "README.md", "sha256": README_SHA, "size": len(CARD)}], **fields},
            "auth": "W"}


TWICE = [{"path": "README.md", "sha256": README_SHA, "size": len(CARD)}] * 2
for label, fields in {"duplicate-paths": {"files": TWICE},
                      "status": {"status": "gone"}, "visibility": {"visibility": "secret"},
                      "relation": {"relation": "cousin"}, "parent-long": {"parent": "x:" + "y" * 300},
                      "parent-private": {"parent": "other/priv@1"}, "parent-missing": {"parent": "acme/m@9"},
                      "parent-draft-other": {"parent": "acme/d@1", "_auth": "OTHER"},
                      "parent-bad-ref": {"parent": "acme/m\n@1"}, "description-long": {"description": "d" * 10_001},
                      "description-nul": {"description": "a\x00b"}, "files-too-many-keys": {"files": "x"}}.items():
    kwargs = _publish(**{k: v for k, v in fields.items() if not k.startswith("_")})
    kwargs["auth"] = fields.get("_auth", "W")
    target = "/api/models/other/new/versions" if kwargs["auth"] == "OTHER" else PUBLISH
    case(f"publish-{label}", "POST", target, **kwargs)
case("publish-anonymous", "POST", PUBLISH, **{**_publish(), "auth": None})
case("publish-other-namespace", "POST", PUBLISH, **{**_publish(), "auth": "OTHER"})
case("publish-read-only-token", "POST", PUBLISH, **{**_publish(), "auth": "RO"})
case("publish-namespace-65", "POST", "/api/models/" + "a" * 65 + "/m/versions", **_publish())
case("publish-name-newline", "POST", "/api/models/acme/m%0A/versions", **_publish())
case("publish-to-revision", "POST", "/api/models/acme/m%401/versions", **_publish())
# aliases, statuses, attestations
ALIASES = "/api/models/acme/m/aliases"
for label, body in {"newline": {"alias": "prod\n", "version": 1}, "digits": {"alias": "3", "version": 1},
                    "v-number": {"alias": "v3", "version": 1}, "long": {"alias": "p" * 49, "version": 1},
                    "nul": {"alias": "p\x00", "version": 1}, "empty": {"alias": "", "version": 1},
                    "version-huge": {"alias": "prod", "version": int(HUGE)},
                    "version-string": {"alias": "prod", "version": "one"},
                    "version-missing": {"alias": "prod"}, "version-negative": {"alias": "prod", "version": -1},
                    "incomplete-card": {"alias": "prod", "version": 1}}.items():
    case(f"alias-{label}", "POST", ALIASES, json=body, auth="W")
case("alias-draft", "POST", "/api/models/acme/d/aliases", json={"alias": "prod", "version": 1}, auth="W")
case("alias-anonymous", "POST", ALIASES, json={"alias": "prod", "version": 1})
case("alias-other-namespace", "POST", ALIASES, json={"alias": "prod", "version": 1}, auth="OTHER")
case("alias-not-json", "POST", ALIASES, content=b"alias=prod", auth="W")
STATUS = "/api/models/acme/m/versions/1/status"
for label, body in {"unknown": {"status": "deleted"}, "draft": {"status": "draft"},
                    "publish-published": {"status": "published"}, "reason-long": {"status": "deprecated",
                                                                                  "reason": "r" * 501},
                    "reason-nul": {"status": "deprecated", "reason": "a\x00b"},
                    "reason-number": {"status": "deprecated", "reason": 5}}.items():
    case(f"status-{label}", "POST", STATUS, json=body, auth="W")
case("status-version-huge", "POST", f"/api/models/acme/m/versions/{HUGE}/status", json={"status": "yanked"},
     auth="W")
case("status-anonymous", "POST", STATUS, json={"status": "yanked"})
case("status-read-only", "POST", STATUS, json={"status": "yanked"}, auth="RO")
ATTEST = "/api/models/acme/m/versions/1/attestations"
for label, body in {"outcome": {"outcome": "great"}, "outcome-long": {"outcome": "o" * 40},
                    "environment-list": {"outcome": "differs", "environment": [1]},
                    "details-huge": {"outcome": "differs", "details": {"x": "y" * 70_000}},
                    "empty": {}}.items():
    case(f"attest-{label}", "POST", ATTEST, json=body, auth="W")
case("attest-draft-anonymous", "POST", "/api/models/acme/d/versions/1/attestations", json={"outcome": "differs"})

# -- the Hugging Face Hub API ----------------------------------------------------------------------------------------
for route, label in (("/api/repos/create", "create"), ("/api/validate-yaml", "validate-yaml"),
                     ("/api/models/acme/m/preupload/main", "preupload"),
                     ("/acme/m.git/info/lfs/objects/batch", "lfs-batch"),
                     ("/api/models/acme/m/paths-info/main", "paths-info")):
    for body_label, body in (("empty", b""), ("not-json", b"{x"), ("list", b"[1]"), ("number", b"5")):
        case(f"hub-{label}-{body_label}", "POST", route, content=body, auth="W",
             headers={"Content-Type": "application/json"})
for label, body in {"name-null": {"organization": "acme"}, "name-int": {"organization": "acme", "name": 5},
                    "no-namespace": {"name": "x"}, "name-newline": {"organization": "acme", "name": "x\n"},
                    "namespace-65": {"organization": "a" * 65, "name": "x"}, "dataset": {"organization": "acme",
                                                                                        "name": "x",
                                                                                        "type": "dataset"},
                    "exists": {"organization": "acme", "name": "m"},
                    "other-namespace": {"organization": "other", "name": "x"}}.items():
    case(f"hub-create-{label}", "POST", "/api/repos/create", json=body, auth="W")
case("hub-create-anonymous", "POST", "/api/repos/create", json={"organization": "acme", "name": "x"})
case("hub-validate-yaml-content-int", "POST", "/api/validate-yaml", json={"content": 5})
case("hub-validate-yaml-content-list", "POST", "/api/validate-yaml", json={"content": ["a"]})
case("hub-preupload-files-int", "POST", "/api/models/acme/m/preupload/main", json={"files": 3}, auth="W")
case("hub-preupload-file-no-path", "POST", "/api/models/acme/m/preupload/main", json={"files": [{}]}, auth="W")
case("hub-preupload-anonymous", "POST", "/api/models/acme/m/preupload/main", json={"files": []})
case("hub-paths-info-paths-str", "POST", "/api/models/acme/m/paths-info/main", json={"paths": "a"})
case("hub-paths-info-revision-huge", "POST", f"/api/models/acme/m/paths-info/{HUGE}", data={"paths": "a"})
case("hub-paths-info-draft", "POST", "/api/models/acme/d/paths-info/1", data={"paths": "model.safetensors"})
for label, body in {"objects-missing": {"operation": "upload"},
                    "download": {"operation": "download", "objects": []},
                    "bad-oid": {"operation": "upload", "objects": [{"oid": "x", "size": 1}]},
                    "negative-size": {"operation": "upload", "objects": [{"oid": SHA, "size": -1}]},
                    "too-large": {"operation": "upload", "objects": [{"oid": SHA, "size": 10**9}]},
                    "transfer": {"operation": "upload", "objects": [], "transfers": ["ssh"]}}.items():
    case(f"hub-lfs-batch-{label}", "POST", "/acme/m.git/info/lfs/objects/batch", json=body, auth="W")
case("hub-lfs-batch-anonymous", "POST", "/acme/m.git/info/lfs/objects/batch", json={"operation": "upload",
                                                                                    "objects": []})
case("hub-lfs-upload-forged", "PUT", f"/api/lfs/objects/{SHA}", content=b"x",
     params={"size": 1, "owner": "acme", "expires": 2**40, "sig": "forged"})
case("hub-lfs-upload-no-signature", "PUT", f"/api/lfs/objects/{SHA}", content=b"x")
case("hub-lfs-upload-expires-huge", "PUT", f"/api/lfs/objects/{SHA}", content=b"x",
     params={"size": 1, "owner": "acme", "expires": HUGE, "sig": "x"})
COMMIT = "/api/models/acme/m/commit/main"
for label, body in {
    "bad-header-line": b"{bad\n", "header-value-list": b'{"key": "header", "value": []}',
    "number-line": b"5\n", "value-null": ndjson('{"key": "file", "value": null}'),
    "unknown-key": ndjson({"key": "copyFile", "value": {"path": "a", "srcPath": "b"}}),
    "bad-base64": ndjson({"key": "file", "value": {"content": "!!!!", "path": "a", "encoding": "base64"}}),
    "base64-short": ndjson({"key": "file", "value": {"content": "aGk", "path": "a", "encoding": "base64"}}),
    "file-no-path": ndjson({"key": "file", "value": {"content": "aGk=", "encoding": "base64"}}),
    "file-path-int": ndjson({"key": "file", "value": {"content": "aGk=", "path": 3, "encoding": "base64"}}),
    "file-traversal": ndjson(inline("../x", b"hi")), "file-absolute": ndjson(inline("/x", b"hi")),
    "file-too-large": ndjson(inline("big.bin", b"x" * 100_001)),
    "ends-inside-file": b'{"key": "file", "value": {"content": "aGk',
    "lfs-no-oid": ndjson({"key": "lfsFile", "value": {"path": "a"}}),
    "lfs-size-string": ndjson({"key": "lfsFile", "value": {"path": "a", "algo": "sha256", "oid": SHA, "size": "1"}}),
    "lfs-never-uploaded": ndjson({"key": "lfsFile", "value": {"path": "a", "algo": "sha256", "oid": "2" * 64,
                                                              "size": 1}}),
    "lfs-algo": ndjson({"key": "lfsFile", "value": {"path": "a", "algo": "md5", "oid": SHA, "size": 1}}),
    "deleted-no-path": ndjson({"key": "deletedFile", "value": {}}),
    "deleted-path-int": ndjson({"key": "deletedFile", "value": {"path": 3}}),
    "deleted-missing": ndjson({"key": "deletedFile", "value": {"path": "nothing"}}),
    "deleted-folder-missing": ndjson({"key": "deletedFolder", "value": {"path": "nothing/"}}),
    "summary-int": b'{"key": "header", "value": {"summary": 3}}',
    "summary-nul": b'{"key": "header", "value": {"summary": "a\\u0000b"}}',
    "parent-int": b'{"key": "header", "value": {"summary": "s", "parentCommit": 5}}',
    "parent-stale": ndjson('{"key": "header", "value": {"summary": "s", "parentCommit": "' + "0" * 40 + '"}}'),
    "card-license-long": ndjson(card("license: " + "l" * 65)),
    "card-pipeline-tag-long": ndjson(card("pipeline_tag: " + "p" * 65)),
    "card-library-long": ndjson(card("library_name: " + "l" * 33)),
    "card-license-list": ndjson(card("license: [a, b]")), "card-tags-dicts": ndjson(card("tags: [{a: 1}]")),
    "card-tags-many": ndjson(card("tags: [" + ", ".join(f"t{i}" for i in range(101)) + "]")),
    "card-base-model-long": ndjson(card("base_model: x:" + "b" * 300)),
    "card-relation": ndjson(card("base_model: x:y\nbase_model_relation: cousin")),
    "card-yaml-alias": ndjson(card("a: &x [1]\nb: *x")), "card-nul": ndjson(inline("README.md", b"# a\x00b\n")),
    "metrics-nan": ndjson(inline("metrics.json", b'{"accuracy": NaN}')),
    "metrics-infinity": ndjson(inline("metrics.json", b'{"accuracy": Infinity}')),
    "metric-name-long": ndjson(inline("metrics.json", json.dumps({"m" * 33: 1.0}).encode())),
    "backbone-name-long": ndjson(inline("config.json", json.dumps({"backbone": {"name": "b" * 65}}).encode())),
    "backbone-family-int": ndjson(inline("config.json", json.dumps({"backbone": {"family": 5}}).encode())),
    "recipe-strategy-long": ndjson(inline("recipe.yaml", b"strategy: " + b"s" * 33 + b"\n")),
    "recipe-yaml-alias": ndjson(inline("recipe.yaml", b"a: &x 1\nb: *x\n")),
    "file-beside-folder": ndjson(inline("x", b"1"), inline("x/y", b"2")),
    "case-clash": ndjson(inline("A.txt", b"1"), inline("a.txt", b"2")),
}.items():
    case(f"hub-commit-{label}", "POST", COMMIT, content=body, auth="W")
case("hub-commit-anonymous", "POST", COMMIT, content=ndjson(inline("a.txt", b"x")))
case("hub-commit-other-namespace", "POST", COMMIT, content=ndjson(inline("a.txt", b"x")), auth="OTHER")
case("hub-commit-pull-request", "POST", COMMIT, params={"create_pr": "1"}, content=ndjson(), auth="W")
case("hub-commit-branch", "POST", "/api/models/acme/m/commit/dev", content=ndjson(), auth="W")
case("hub-commit-no-model", "POST", "/api/models/acme/nothing/commit/main", content=ndjson(inline("a", b"x")),
     auth="W")
for label, revision in BAD_REVISIONS.items():
    for route, kind in (("/api/models/{model}/revision/{rev}", "info"), ("/api/models/{model}/tree/{rev}", "tree"),
                        ("/{model}/resolve/{rev}/model.safetensors", "resolve"),
                        ("/api/models/{model}/commits/{rev}", "commits")):
        case(f"hub-{kind}-revision-{label}", "GET", _revision_url(route, revision))
case("hub-tree-missing-folder", "GET", "/api/models/acme/m/tree/main/nothing")
case("hub-resolve-missing-file", "GET", "/acme/m/resolve/main/nothing.bin")
case("hub-resolve-head-missing", "HEAD", "/acme/m/resolve/main/nothing.bin")
case("hub-resolve-name-newline", "GET", "/acme/m%0A/resolve/main/README.md")
case("hub-resolve-dataset", "GET", "/datasets/acme/m/resolve/main/x")
case("hub-list-page-huge", "GET", "/api/models", params={"page": HUGE})
case("hub-list-page-float", "GET", "/api/models", params={"page": "1.6e22"})
case("hub-list-limit-negative", "GET", "/api/models", params={"limit": "-5"})
case("hub-list-limit-word", "GET", "/api/models", params={"limit": "many"})
case("hub-list-search-nul", "GET", "/api/models", params={"search": "\x00"})
case("hub-auth-check-private", "GET", "/api/models/other/priv/auth-check")
case("hub-whoami-anonymous", "GET", "/api/whoami-v2")
case("hub-whoami-unknown-token", "GET", "/api/whoami-v2", headers={"Authorization": "Bearer zoo_nope"})
case("hub-delete-repo", "POST", "/api/repos/delete", json={"name": "m", "organization": "acme"}, auth="W")
case("hub-settings", "PUT", "/api/models/acme/m/settings", json={"private": True}, auth="W")

# -- the catalog's pages (their forms are GET queries) ---------------------------------------------------------------
HTML = {"Accept": "text/html"}
for label, params in {"page-huge": {"page": HUGE}, "page-word": {"page": "x"}, "per-page-word": {"per_page": "x"},
                      "q-nul": {"q": "\x00"}, "tag-nul": {"tag": "a\x00"}}.items():
    case(f"web-home-{label}", "GET", "/", params=params, headers=HTML)
for label, bad in BAD_NAMES.items():
    case(f"web-model-{label}", "GET", f"/acme/{bad}", headers=HTML)
for label, revision in BAD_REVISIONS.items():
    case(f"web-version-{label}", "GET", _revision_url("/{model}/v/{rev}", revision), headers=HTML)
    case(f"web-lineage-{label}", "GET", _revision_url("/{model}/v/{rev}/lineage", revision), headers=HTML)
for label, (a, b) in {"dotdot": ("..", "acme/m@1"), "missing": ("acme/m@9", "acme/m@1"),
                      "private": ("other/priv@1", "acme/m@1"), "draft": ("acme/d@1", "acme/m@1"),
                      "huge": (f"acme/m@{HUGE}", "acme/m@1"), "nul": ("acme/m\x00", "acme/m@1")}.items():
    case(f"web-compare-{label}", "GET", "/compare", params={"a": a, "b": b}, headers=HTML)
case("web-plugins-page-word", "GET", "/plugins", params={"page": "x"}, headers=HTML)
case("web-no-page", "GET", "/nothing/here/at/all", headers=HTML)
case("web-private-model", "GET", "/other/priv", headers=HTML)


def message_of(response, method: str) -> str:
    if method == "HEAD":
        return response.headers.get("x-error-message", "")
    if response.headers.get("content-type", "").startswith("text/html"):
        return response.text.split('<section class="error">', 1)[-1].split("</section>", 1)[0]
    return response.json()["error"]


def test_the_table_has_at_least_150_cases_and_unique_ids():
    assert len(CASES) >= 150, len(CASES)
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("method", "url", "kwargs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_4xx_with_a_message_and_stores_nothing(registry, method, url, kwargs):
    client, service, tokens = registry
    kwargs = dict(kwargs)
    token = kwargs.pop("auth", None)
    if token:
        kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {tokens[token]}"}
    readme = hashlib.sha256(CARD).hexdigest()
    for key in ("json", "content"):  # the stored card's address, for publishing cases
        if key in kwargs:
            raw = json.dumps(kwargs[key]) if key == "json" else kwargs[key]
            if README_SHA in str(raw):
                kwargs.pop(key)
                kwargs["content"] = (raw if isinstance(raw, str) else raw.decode()).replace(README_SHA, readme)
                kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
    before = stored(service)
    response = client.request(method, url, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    message = message_of(response, method)
    assert len(message.strip()) > 10, response.text[:500]
    assert stored(service) == before


def test_control_characters_in_a_url_are_answered_400_by_a_real_server(registry):
    """uvicorn's parser refuses them with a 400 (the connection is answered, then closed), and the server goes
    on answering; a NUL spelled %00 is refused by the app."""
    import threading
    import time

    import httpx
    import uvicorn
    client, service, tokens = registry
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        for raw in (b"/api/models/acme/m\x01", b"/api/search?q=\x7f", b"/api/search?q=\x00", b"/a b",
                    b"/api/search?q=\xe9", b"/acme/m\n/x"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = conn.recv(4096)
            assert answer.startswith(b"HTTP/1.1 400"), (raw, answer[:200])
            assert b"Invalid HTTP request" in answer
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/api/search", params={"q": "\x00"}).status_code == 400
        # a control character the message echoes: the X-Error-Message header must not carry it (it once dropped the
        # connection, answered by nothing)
        auth = {"Authorization": f"Bearer {tokens['W']}"}
        for answer in (httpx.get(f"{url}/api/search", params={"metric": "a\x05>=1"}),
                       httpx.post(f"{url}/other%05/m.git/info/lfs/objects/batch", headers=auth, json={}),
                       httpx.post(f"{url}/api/models/ac%17me/m/commit/main", headers=auth, content=b"")):
            assert 400 <= answer.status_code < 500 and answer.headers["x-error-message"].isprintable()
        assert httpx.get(f"{url}/api/models").status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
