"""Downloads answered before the routes (registry_server/direct.py) answer exactly as the routes do: the same
status, headers and bytes for every URL, revision, range, condition and token tried, with the routes answering
whatever the direct path leaves to them (errors, private files for others, yanked versions, bad tokens)."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from registry_server import direct
from registry_server.app import create_app
from registry_server.direct import DirectDownloads
from tests.cards import complete_card

CARD = complete_card().encode()
WEIGHTS = bytes(range(256)) * 8


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("direct")
    app = create_app(root)
    routes_only = create_app(root)  # the same registry, without the direct path
    routes_only.user_middleware = [m for m in routes_only.user_middleware if m.cls is not DirectDownloads]
    service = app.state.service

    def publish(model: str, weights: bytes, **options):
        files = [service.store_file([CARD], "README.md"), service.store_file([weights], "w.bin"),
                 service.store_file([weights[::-1]], "sub/dir/x.bin")]
        return service.publish(model, files, **options)

    first = publish("acme/m", WEIGHTS)
    publish("acme/m", WEIGHTS[:1000], parent="acme/m@1")
    publish("acme/m", b"withdrawn", parent="acme/m@2")
    service.set_status("acme/m@3", "yanked", reason="broken")
    service.set_alias("acme/m", "production", 1)
    publish("acme/p", b"private weights", visibility="private")
    publish("acme/m", b"a draft", status="draft")
    tokens = {"acme": service.create_token("acme"), "other": service.create_token("other")}
    with TestClient(app) as fast, TestClient(routes_only) as slow:
        yield fast, slow, app, tokens, first.commit


URLS = ["/acme/m/resolve/main/w.bin", "/acme/m/resolve/HEAD/w.bin", "/acme/m/resolve/refs%2Fheads%2Fmain/w.bin",
        "/acme/m/resolve/1/w.bin", "/acme/m/resolve/v2/sub/dir/x.bin", "/acme/m/resolve/production/w.bin",
        "/acme/m/resolve/{commit}/w.bin", "/acme/m/resolve/3/w.bin", "/acme/m/resolve/4/w.bin",
        "/acme/m/resolve/main/nope.bin", "/acme/m/resolve/main/", "/acme/m/resolve/staging/w.bin",
        "/acme/nope/resolve/main/w.bin", "/acme/p/resolve/main/w.bin", "/api/models/resolve/main/tree/w.bin",
        "/api/models/acme/m/versions/1/files/w.bin", "/api/models/acme/m/versions/latest/files/sub/dir/x.bin",
        "/api/models/acme/m/versions/production/files/w.bin", "/api/models/acme/m/versions/3/files/w.bin",
        "/api/models/acme/p/versions/1/files/w.bin", "/api/models/acme/m/versions/1/files/nope.bin"]
HEADERS = [{}, {"Range": "bytes=0-0"}, {"Range": "bytes=100-"}, {"Range": "bytes=-5"}, {"Range": "bytes=5-99999"},
           {"Range": "bytes=0-1,5-6"}, {"Range": "bytes=99999-"}, {"Range": "lines=1-2"}, {"If-None-Match": "*"},
           {"If-None-Match": "ETAG"}, {"Range": "bytes=0-9", "If-None-Match": '"0000"'}, {"Authorization": "acme"},
           {"Authorization": "other"}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic YTpi"},
           {"Authorization": "acme", "Range": "bytes=3-4"}]
VARYING = {"date", "server-timing"}


def _headers(wanted: dict[str, str], tokens: dict[str, str], etag: str) -> dict[str, str]:
    out = dict(wanted)
    if out.get("Authorization") in tokens:
        out["Authorization"] = f"Bearer {tokens[out['Authorization']]}"
    if out.get("If-None-Match") == "ETAG":
        out["If-None-Match"] = etag
    return out


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_direct_path_answers_as_the_routes_do(registry, method):
    fast, slow, _, tokens, commit = registry
    etag = fast.get("/acme/m/resolve/main/w.bin").headers["etag"]
    for url in (u.format(commit=commit) for u in URLS):
        for wanted in HEADERS:
            headers = _headers(wanted, tokens, etag)
            one, other = fast.request(method, url, headers=headers), slow.request(method, url, headers=headers)
            assert (one.status_code, one.content) == (other.status_code, other.content), (url, wanted)
            assert {k: v for k, v in one.headers.items() if k not in VARYING} == \
                   {k: v for k, v in other.headers.items() if k not in VARYING}, (url, wanted)


def test_the_direct_path_serves_the_plain_cases_and_leaves_the_rest(registry):
    fast, _, app, tokens, commit = registry

    def answers(path: str, token: str | None = None) -> bool:
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b"", "app": app}
        return asyncio.run(direct.answer(scope)) is not None

    for path in ("/acme/m/resolve/main/w.bin", f"/acme/m/resolve/{commit}/sub/dir/x.bin",
                 "/acme/m/resolve/production/w.bin", "/api/models/acme/m/versions/2/files/w.bin"):
        assert answers(path), path
    assert answers("/acme/p/resolve/main/w.bin", tokens["acme"])
    assert answers("/acme/m/resolve/4/w.bin", tokens["acme"])  # the namespace's own draft
    for path, token in (("/acme/p/resolve/main/w.bin", None), ("/acme/p/resolve/main/w.bin", tokens["other"]),
                        ("/acme/m/resolve/3/w.bin", None), ("/acme/m/resolve/4/w.bin", None),
                        ("/acme/m/resolve/main/nope.bin", None), ("/acme/m/resolve/main/w.bin", "not-a-token"),
                        ("/api/models/resolve/main/tree/w.bin", None), ("/acme/m/v/1", None)):
        assert not answers(path, token), (path, token)
    # and what it leaves, the routes answer: the private file to its namespace, errors to everyone else
    assert fast.get("/acme/p/resolve/main/w.bin", headers={"Authorization": f"Bearer {tokens['acme']}"}).content \
        == b"private weights"
    assert fast.get("/acme/p/resolve/main/w.bin").status_code in (401, 404)
    assert fast.get("/acme/m/resolve/3/w.bin").headers["x-error-code"] == "RevisionNotFound"
