"""The Hub-client calls of issue 11, tried against a running `zoo serve`; prints one JSON object: call -> outcome.

Run it with each client version (PYTHONPATH=.venv/hf-clients/VERSION for the older ones), with HF_ENDPOINT set to the
server, TOKEN a token for namespace `acme`, and the server holding `acme/xray` (a complete card, version 1 published,
version 2 yanked). Every repository it creates is named after the client version, so the runs do not collide.
"""

from __future__ import annotations

import io
import json
import os
import sys

import httpx
import huggingface_hub
from huggingface_hub import CommitOperationAdd, CommitOperationCopy, HfApi, hf_hub_download

V = huggingface_hub.__version__.replace(".", "")
TOKEN, ENDPOINT = os.environ["TOKEN"], os.environ["HF_ENDPOINT"]
api, anonymous = HfApi(token=TOKEN), HfApi(token=False)
results: dict[str, str] = {}


def tried(name, call):
    try:
        value = call()
        results[name] = "ok" if value is None else f"ok: {value}"
    except Exception as exc:  # the outcome is what we record
        response = getattr(exc, "response", None)
        # the server's own message when there is one (the client prints it after its own lines)
        message = (response.headers.get("x-error-message") if response is not None else None) or str(exc)
        results[name] = f"{type(exc).__name__} {getattr(response, 'status_code', None)}: {message[:200]}"


def upload(repo, data=b"x", path="x.txt", **kw):
    return api.upload_file(path_or_fileobj=io.BytesIO(data), path_in_repo=path, repo_id=repo, **kw).oid[:8]


private = f"acme/private-{V}"
tried("create_repo(private=True)", lambda: api.create_repo(private, private=True, exist_ok=True) and None)
tried("anonymous model_info(private)", lambda: anonymous.model_info(private).id)
tried("owner model_info(private).private", lambda: api.model_info(private).private)
empty = f"acme/empty-{V}"
tried("create_repo(empty)", lambda: api.create_repo(empty, exist_ok=True) and None)
tried("model_info(empty)", lambda: api.model_info(empty).sha)
tried("repo_exists(empty)", lambda: api.repo_exists(empty))
tried("list_repo_files(empty)", lambda: api.list_repo_files(empty))
tried("hf_hub_download(empty, README.md)", lambda: hf_hub_download(empty, "README.md", token=TOKEN))
tried("upload_file(incomplete card)", lambda: upload(empty, b"---\nlicense: mit\n---\n# a template card\n",
                                                      "README.md", commit_message="card"))
tried("upload_file(x.txt)", lambda: upload(empty, commit_message="add x", commit_description="more words"))
tried("list_repo_commits", lambda: [c.title for c in api.list_repo_commits(empty)])
tried("upload_file(stale parent_commit)", lambda: upload(empty, b"y", "y.txt", parent_commit="0" * 40))
tried("upload_file(revision='1')", lambda: upload(empty, b"z", "z.txt", revision="1"))
tried("get_paths_info", lambda: [p.path for p in api.get_paths_info(empty, ["x.txt", "README.md"])])
tried("CommitOperationCopy", lambda: api.create_commit(empty, [CommitOperationCopy("x.txt", "x2.txt")],
                                                       commit_message="copy").oid[:8])
tried("delete_file(missing)", lambda: api.delete_file("nope.txt", empty) and None)
tried("upload_file(never created repo)", lambda: upload(f"acme/never-{V}"))
tried("whoami", lambda: api.whoami()["name"])
tried("auth_check", lambda: api.auth_check("acme/xray") if hasattr(api, "auth_check") else "no such call")
tried("create_branch", lambda: api.create_branch(empty, branch="dev"))
tried("create_tag", lambda: api.create_tag(empty, tag="t1"))
tried("delete_repo", lambda: api.delete_repo(f"acme/private-{V}"))
tried("update_repo_settings", lambda: api.update_repo_settings(empty, gated="auto"))
tried("get_repo_discussions", lambda: list(api.get_repo_discussions(empty)))
tried("move_repo", lambda: api.move_repo(empty, f"acme/moved-{V}"))
tried("model_info(gpt2)", lambda: anonymous.model_info("gpt2").id)
tried("model_info(bert-base-uncased)", lambda: anonymous.model_info("bert-base-uncased").id)
tried("dataset_info(acme/xray)", lambda: anonymous.dataset_info("acme/xray").id)
tried("model_info(rev refs/heads/main)", lambda: api.model_info("acme/xray", revision="refs/heads/main").sha[:8])
tried("hf_hub_download(rev refs/heads/main)",
      lambda: os.path.basename(hf_hub_download("acme/xray", "config.json", revision="refs/heads/main")))
tried("list_repo_refs branches", lambda: sorted(b.name for b in api.list_repo_refs("acme/xray").branches))
tried("model_info(yanked)", lambda: api.model_info("acme/xray", revision="2").sha[:8])
tried("list_repo_files(yanked)", lambda: api.list_repo_files("acme/xray", revision="2"))
tried("ModelInfo.config", lambda: api.model_info("acme/xray").config)
tried("ModelInfo.safetensors", lambda: (api.model_info("acme/xray", files_metadata=True).safetensors or {}) and
      api.model_info("acme/xray").safetensors.total)
tried("commitUrl opens the version page", lambda: (lambda r: f"{r.status_code} {r.url.path}")(
    httpx.get(api.create_commit(empty, [CommitOperationAdd("v.txt", b"v")], commit_message="v").commit_url,
              follow_redirects=True)))
tried("unknown token", lambda: HfApi(token="hf_notazootoken").model_info("acme/xray").id)
tried("list_models(pipeline_tag)", lambda: [m.id for m in anonymous.list_models(pipeline_tag="image-classification")])
tried("list_models(filter AND)", lambda: [m.id for m in anonymous.list_models(filter=["xray", "nonexistent-tag"])])
tried("list_models(sort=created_at)", lambda: [m.id for m in anonymous.list_models(sort="created_at", limit=3)])
tried("list_models(full, cardData)", lambda: [(m.id, bool(m.card_data), bool(m.siblings))
                                               for m in anonymous.list_models(search="xray", full=True,
                                                                              cardData=True)])
tried("list_models(search=xray).library_name",
      lambda: [m.library_name for m in anonymous.list_models(search="xray")])
tried("malformed NDJSON", lambda: (lambda r: f"{r.status_code} {r.headers.get('x-error-message')}")(
    httpx.post(f"{ENDPOINT}/api/models/{empty}/commit/main", content=b"{not json",
               headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"})))
print(json.dumps({"version": huggingface_hub.__version__, "results": results}))
sys.exit(0)
