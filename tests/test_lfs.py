"""Large files through the Hub's clients (the Git LFS batch API), and who may publish which stored bytes.

A real `zoo serve` with a 1 MiB LFS threshold, so the LFS path runs on files of a few MiB; a file inside a commit is
then capped at 1 MiB too, so a file that arrives whole came through LFS. The three client versions upload and
download; raw HTTP covers what no client sends (forged or expired upload URLs, wrong bytes, someone else's hash).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import httpx
import pytest

import zoo_core
from tests.test_hf_hub import CARD, OLDER_CLIENTS, VENV_BIN, run_client

MIB = 1024 * 1024
SECRET = "test-lfs-key"


@pytest.fixture(scope="module")
def lfs_hub(tmp_path_factory, serve):
    """A registry with acme/private (private) and acme/yanked (v1 yanked, v2 published), each with unique weights
    pushed embedded (so no token holder uploaded them); tokens for acme and for evil."""
    tmp = tmp_path_factory.mktemp("lfs")
    root = tmp / "registry"
    registry = zoo_core.open_registry(str(root))
    weights = {}
    for name, versions in (("private", 1), ("yanked", 2)):
        for version in range(1, versions + 1):
            folder = tmp / f"{name}{version}"
            folder.mkdir()
            (folder / "README.md").write_text(CARD)
            data = os.urandom(2 * MIB)
            (folder / "model.safetensors").write_bytes(data)
            weights[f"{name}{version}"] = data
            registry.push(folder, f"acme/{name}", visibility="private" if name == "private" else None)
    registry.yank("acme/yanked@1", "leaked data")
    acme, evil = registry.create_token("acme"), registry.create_token("evil")
    registry.service.engine.dispose()
    url = serve(root, "--max-upload", str(8 * MIB), env={"ZOO_LFS_THRESHOLD": str(MIB), "ZOO_LFS_SECRET": SECRET})
    yield {"url": url, "token": acme, "evil": evil, "tmp": tmp, "root": root, "weights": weights,
           "v1": "", "v2": "", "minilm": ""}


def blobs(root) -> set[str]:
    base = root / "blobs" / "sha256"
    return {p.parent.name + p.name for p in base.glob("*/*")}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


UPLOAD = """
    import hashlib, json, os
    from huggingface_hub import HfApi, hf_hub_download
    api = HfApi(token=os.environ["TOKEN"])
    repo, folder = os.environ["REPO"], os.environ["FOLDER"]
    api.create_repo(repo)
    api.upload_folder(folder_path=folder, repo_id=repo, commit_message="with a large file")
    extra = os.path.join(folder, "..", "extra.bin")
    api.upload_file(path_or_fileobj=extra, path_in_repo="shards/extra.bin", repo_id=repo)
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
    print(json.dumps({"weights": digest(hf_hub_download(repo, "model.safetensors")),
                      "extra": digest(hf_hub_download(repo, "shards/extra.bin")),
                      "files": sorted(api.list_repo_files(repo))}))
"""


@pytest.mark.parametrize("version", ["installed", "0.36.2", "1.33.0"])
def test_each_client_uploads_large_files_through_lfs_and_downloads_them_back(lfs_hub, version):
    """upload_folder (a 3 MiB file: above the LFS threshold and above what a commit may carry inline) and
    upload_file (2 MiB, into a folder), then both downloaded byte-identical. 1.x and 2.x need HF_HUB_DISABLE_XET."""
    env = {"HF_HUB_DISABLE_XET": "1"}
    if version != "installed":
        if version not in OLDER_CLIENTS:
            pytest.skip(f"huggingface_hub {version} is not installed under .venv/hf-clients (make test installs it)")
        env["PYTHONPATH"] = str(VENV_BIN.parent / "hf-clients" / version)
        if version.startswith("0."):
            env = {"PYTHONPATH": env["PYTHONPATH"]}  # 0.x negotiates the transfer: the zoo's `basic` answer is enough
    folder = lfs_hub["tmp"] / f"client-{version}" / "model"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(CARD)
    weights, extra = os.urandom(3 * MIB), os.urandom(2 * MIB)
    (folder / "model.safetensors").write_bytes(weights)
    (folder.parent / "extra.bin").write_bytes(extra)
    env.update({"REPO": f"acme/lfs-{version.replace('.', '-')}", "FOLDER": str(folder)})
    out = run_client(lfs_hub, UPLOAD, cache=f"cache-{version}", extra_env=env)
    assert out == {"weights": sha(weights), "extra": sha(extra),
                   "files": ["README.md", "model.safetensors", "shards/extra.bin"]}
    assert {sha(weights), sha(extra)} <= blobs(lfs_hub["root"])


def test_a_client_on_xet_is_told_how_to_upload(lfs_hub):
    """huggingface_hub 2.x sends LFS files through Xet whenever hf_xet is installed; the zoo answers its token
    request with what to do, and nothing is published."""
    folder = lfs_hub["tmp"] / "xet"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(2 * MIB))
    out = run_client(lfs_hub, """
        import json, os
        from huggingface_hub import HfApi
        api = HfApi(token=os.environ["TOKEN"])
        api.create_repo("acme/xet")
        try:
            api.upload_file(path_or_fileobj=os.path.join(os.environ["TMP"], "xet", "big.bin"), path_in_repo="big.bin",
                            repo_id="acme/xet")
            print(json.dumps({"error": None}))
        except Exception as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    """, cache="cache-xet")
    # hf_xet shows the URL that failed, not the answer's message: the zoo's refusal lives at a URL that says it
    assert out["error"] is not None and "set-HF_HUB_DISABLE_XET=1-to-upload-through-git-lfs" in out["error"]
    tree = httpx.get(f"{lfs_hub['url']}/api/models/acme/xet/tree/main")  # an empty repository, as on the Hub
    assert tree.status_code == 200 and tree.json() == []  # nothing published


def batch(hub, oids_sizes, token):
    return httpx.post(f"{hub['url']}/acme/raw.git/info/lfs/objects/batch",
                      json={"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
                            "objects": [{"oid": o, "size": s} for o, s in oids_sizes]},
                      headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.git-lfs+json"})


def signed(hub, sha256: str, size: int, owner: str, expires: int) -> str:
    sig = hmac.new(SECRET.encode(), f"{sha256}\n{size}\n{owner}\n{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{hub['url']}/api/lfs/objects/{sha256}?size={size}&owner={owner}&expires={expires}&sig={sig}"


def test_upload_urls_are_signed_short_lived_and_checked(lfs_hub):
    data = os.urandom(MIB + 5)
    anonymous = httpx.post(f"{lfs_hub['url']}/acme/raw.git/info/lfs/objects/batch", json={"objects": []})
    assert anonymous.status_code == 401
    assert batch(lfs_hub, [(sha(data), len(data))], lfs_hub["evil"]).status_code == 403  # not evil's namespace
    answer = batch(lfs_hub, [(sha(data), len(data))], lfs_hub["token"])
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/vnd.git-lfs+json")
    body = answer.json()
    assert body["transfer"] == "basic" and not any("xet" in h.lower() for h in answer.headers)
    href = body["objects"][0]["actions"]["upload"]["href"]
    before = blobs(lfs_hub["root"])
    # the client's PUT carries no Authorization header: the URL is the credential, for one object only
    forged = httpx.put(href.replace(f"size={len(data)}", f"size={len(data) + 1}"), content=data + b"x")
    assert forged.status_code == 403 and "not one the zoo signed" in forged.json()["error"]
    other = httpx.put(href.replace(sha(data), "0" * 64), content=data)
    assert other.status_code == 403
    expired = httpx.put(signed(lfs_hub, sha(data), len(data), "acme", int(time.time()) - 1), content=data)
    assert expired.status_code == 403 and "expired" in expired.json()["error"]
    wrong = os.urandom(len(data))
    refused = httpx.put(href, content=wrong)
    assert refused.status_code == 400 and "sha256 mismatch" in refused.json()["error"]
    short = httpx.put(href, content=(c for c in [data[:100]]))  # chunked, and too short
    assert short.status_code == 400 and "expected" in short.json()["error"]
    assert blobs(lfs_hub["root"]) == before and not list((lfs_hub["root"] / "blobs" / "tmp").iterdir())
    assert httpx.put(href, content=data).status_code == 200
    assert blobs(lfs_hub["root"]) == before | {sha(data)}
    again = batch(lfs_hub, [(sha(data), len(data))], lfs_hub["token"]).json()["objects"][0]
    assert "actions" not in again  # acme uploaded it: nothing to send again
    too_big = batch(lfs_hub, [(sha(data), 9 * MIB)], lfs_hub["token"])
    assert too_big.status_code == 413 and "upload limit" in too_big.json()["error"]


def create_repo(hub, repo, token):
    namespace, name = repo.split("/")
    created = httpx.post(f"{hub['url']}/api/repos/create", json={"organization": namespace, "name": name},
                         headers={"Authorization": f"Bearer {token}"})
    assert created.status_code in (200, 409), created.text


def hub_commit(hub, repo, token, *operations):
    lines = [{"key": "header", "value": {"summary": "raw", "description": ""}}, *operations]
    return httpx.post(f"{hub['url']}/api/models/{repo}/commit/main", content="\n".join(map(json.dumps, lines)),
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})


def regular(path, data):
    return {"key": "file", "value": {"content": base64.b64encode(data).decode(), "path": path, "encoding": "base64"}}


def lfs_file(path, data, oid=None):
    return {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid or sha(data), "size": len(data)}}


def test_knowing_a_hash_publishes_nothing(lfs_hub):
    """An attacker with a token of its own and the sha256 of a private model's weights, or of a yanked version's,
    cannot publish them: not through the zoo API, not through a Hub commit; the LFS batch asks for the bytes."""
    url, evil = lfs_hub["url"], {"Authorization": f"Bearer {lfs_hub['evil']}"}
    readme = CARD.encode()
    create_repo(lfs_hub, "evil/copy", lfs_hub["evil"])
    for secret in (lfs_hub["weights"]["private1"], lfs_hub["weights"]["yanked1"]):
        digest, size = sha(secret), len(secret)
        assert httpx.head(f"{url}/api/blobs/{digest}", headers=evil).status_code == 404  # "upload it"
        httpx.put(f"{url}/api/blobs/{sha(readme)}", params={"path": "README.md"}, content=readme, headers=evil)
        pushed = httpx.post(f"{url}/api/models/evil/copy/versions", headers=evil, json={"files": [
            {"path": "README.md", "sha256": sha(readme), "size": len(readme)},
            {"path": "model.safetensors", "sha256": digest, "size": size}]})
        assert pushed.status_code == 400 and "was not uploaded" in pushed.json()["error"]
        committed = hub_commit(lfs_hub, "evil/copy", lfs_hub["evil"], regular("README.md", readme),
                               lfs_file("model.safetensors", secret))
        assert committed.status_code == 400 and "was not uploaded" in committed.json()["error"]
        objects = httpx.post(f"{url}/evil/copy.git/info/lfs/objects/batch", headers=evil, json={
            "operation": "upload", "transfers": ["basic"], "objects": [{"oid": digest, "size": size}]}).json()
        assert "upload" in objects["objects"][0]["actions"]  # never "already there" by hash alone
    assert httpx.get(f"{url}/api/models/evil/copy", headers=evil).json()["versions"] == []  # nothing published
    # the same token holder of acme, too, cannot bring the yanked weights back without the bytes
    acme = {"Authorization": f"Bearer {lfs_hub['token']}"}
    yanked = lfs_hub["weights"]["yanked1"]
    back = httpx.post(f"{url}/api/models/acme/yanked/versions", headers=acme, json={"files": [
        {"path": "README.md", "sha256": sha(readme), "size": len(readme)},
        {"path": "model.safetensors", "sha256": sha(yanked), "size": len(yanked)}]})
    assert back.status_code == 400


def test_writers_republish_what_they_can_read_or_uploaded_and_equal_bytes_are_stored_once(lfs_hub):
    url = lfs_hub["url"]
    evil = zoo_core.open_registry(url, token=lfs_hub["evil"])
    public = lfs_hub["weights"]["yanked2"]  # acme/yanked@2 is public: anyone may build on its files
    folder = lfs_hub["tmp"] / "derived"
    folder.mkdir()
    (folder / "README.md").write_text(CARD)
    (folder / "model.safetensors").write_bytes(public)
    count = len(blobs(lfs_hub["root"]))
    assert evil.push(folder, "evil/derived").number == 1  # HEAD said 200: nothing uploaded, publish accepted
    assert len(blobs(lfs_hub["root"])) == count
    # the private weights, uploaded by someone who has them: accepted, and still one copy
    (folder / "model.safetensors").write_bytes(lfs_hub["weights"]["private1"])
    assert evil.push(folder, "evil/derived").number == 2
    assert len(blobs(lfs_hub["root"])) == count
    # acme re-pushes its own private model's files (it can read them): no upload needed
    acme = zoo_core.open_registry(url, token=lfs_hub["token"])
    assert acme.push(folder, "acme/private").number == 2


def test_a_hub_commit_is_read_in_bounded_lines_and_a_refused_one_leaves_no_blob(lfs_hub):
    create_repo(lfs_hub, "acme/inline", lfs_hub["token"])
    before = blobs(lfs_hub["root"])
    big = os.urandom(MIB + 1)  # above what a commit carries inline (the LFS threshold)
    inline = hub_commit(lfs_hub, "acme/inline", lfs_hub["token"], regular("README.md", CARD.encode()),
                        regular("model.safetensors", big))
    assert inline.status_code == 413 and "Git LFS" in inline.json()["error"]
    reordered = {"key": "file", "value": {"path": "model.safetensors", "encoding": "base64",
                                          "content": base64.b64encode(big).decode()}}  # read whole: capped too
    assert hub_commit(lfs_hub, "acme/inline", lfs_hub["token"], reordered).status_code == 413
    not_base64 = hub_commit(lfs_hub, "acme/inline", lfs_hub["token"], regular("README.md", CARD.encode()),
                            {"key": "file", "value": {"content": "no*base64", "path": "x.bin", "encoding": "base64"}})
    assert not_base64.status_code == 400 and "base64" in not_base64.json()["error"]
    traversal = hub_commit(lfs_hub, "acme/inline", lfs_hub["token"], regular("README.md", CARD.encode()),
                           lfs_file("x.bin", b"", oid="../../registry.db"))
    assert traversal.status_code == 400 and "64 lowercase hex" in traversal.json()["error"]
    unique = os.urandom(1000)
    refused = hub_commit(lfs_hub, "acme/inline", lfs_hub["token"], regular("README.md", CARD.encode()),
                         regular("weights.bin", unique), regular("metrics.json", b'{"accuracy": Infinity}'))
    assert refused.status_code == 422  # non-finite metrics (issue 12)
    anonymous = httpx.post(f"{lfs_hub['url']}/api/models/acme/inline/commit/main", content=b"x" * MIB)
    assert anonymous.status_code == 401
    assert blobs(lfs_hub["root"]) == before
    small = {"key": "file", "value": {"path": "README.md", "encoding": "base64",
                                      "content": base64.b64encode(CARD.encode()).decode()}}
    published = hub_commit(lfs_hub, "acme/inline", lfs_hub["token"], small, regular("weights.bin", unique))
    assert published.status_code == 200, published.text
    assert httpx.get(f"{lfs_hub['url']}/acme/inline/resolve/main/weights.bin",
                     headers={"Authorization": f"Bearer {lfs_hub['token']}"}).content == unique


def test_gc_keeps_uploaded_blobs_while_their_upload_lasts(tmp_path, database_url):
    """An LFS upload may come long before its commit: gc keeps the blob while the upload lasts, however old the
    blob, and takes it once the upload has expired."""
    from zoo_core.registry.service import RegistryService

    service = RegistryService(database_url, tmp_path / "blobs")
    spec = service.store_file([b"early upload"], "model.safetensors")
    service.record_upload("acme", spec.sha256)
    os.utime(service.blobs.path(spec.sha256), (time.time() - 7200,) * 2)  # older than gc's grace period
    assert service.gc()["removed"] == 0 and service.blobs.exists(spec.sha256)
    service.record_upload("acme", spec.sha256, lease=-1)  # the upload has expired
    assert service.gc()["removed"] == 1 and not service.blobs.exists(spec.sha256)
    service.engine.dispose()


def test_publishing_needs_an_upload_or_a_readable_version(tmp_path, database_url):
    """The rule itself, on SQLite and PostgreSQL: a private or yanked version's blob is publishable by its hash only
    for whoever can read it; anyone who uploads the bytes may publish them, and they are still stored once."""
    from zoo_core.errors import ZooError
    from zoo_core.registry.service import RegistryService, Viewer

    service = RegistryService(database_url, tmp_path / "blobs")
    secret, old = os.urandom(1000), os.urandom(1000)
    readme = service.store_file([CARD.encode()], "README.md")
    service.publish("acme/private", [readme, service.store_file([secret], "model.safetensors")],
                    visibility="private")
    service.publish("acme/old", [readme, service.store_file([old], "model.safetensors")])
    service.set_status("acme/old@1", "yanked", "leaked")
    evil, acme = Viewer(frozenset({"evil"}), name="evil"), Viewer(frozenset({"acme"}), name="acme")
    own_readme = service.store_file([CARD.encode()], "README.md", viewer=evil)
    stored = set(service.blobs.all())
    for data in (secret, old):
        spec = service.store_file([data], "model.safetensors")  # the spec an attacker can write from the hash alone
        assert service.has_blob(spec.sha256, evil) is False
        with pytest.raises(ZooError, match="was not uploaded"):
            service.publish("evil/copy", [own_readme, spec], viewer=evil)
    assert service.has_blob(sha(secret), acme) is True  # its own private model: readable, no upload needed
    assert service.publish("acme/again", [readme, service.store_file([secret], "model.safetensors")],
                           viewer=acme).number == 1
    with pytest.raises(ZooError, match="was not uploaded"):  # yanked: not even its owner re-serves it by hash
        service.publish("acme/again", [readme, service.store_file([old], "model.safetensors")], viewer=acme)
    uploaded = service.store_file([secret], "model.safetensors", viewer=evil)  # evil has the bytes after all
    assert service.publish("evil/copy", [own_readme, uploaded], viewer=evil).number == 1
    assert set(service.blobs.all()) == stored  # equal bytes, one copy
    service.engine.dispose()
