"""`zoo search`, `zoo versions` and `zoo show` on a local registry answer through sqlite3 alone
(zoo_core/registry/lite.py): the same answers as the registry's service, over every filter, sort and page that path
takes and every version of the registry (parents, reproductions, rankings, statuses); the service where it
does not apply (literal text, lineage filters, a registry not at the migrations' head); and no SQLAlchemy
imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cards import complete_card
from zoo_core.client import open_registry
from zoo_core.registry.lite import open_lite

# (model, backbone, family, task, library, tags, accuracy, strategy, visibility)
MODELS = [
    ("acme/chest-xray", "resnet18", "resnet", "image-classification", "zoo", "medical, xray", 0.91, "finetune",
     None),
    ("acme/lungs", "resnet50", "resnet", "image-classification", None, "medical", 0.85, "linear-probe", None),
    ("acme/birds", "vgg16", "vgg", "image-classification", "zoo", "nature, Birds", 0.95, None, "private"),
    ("labs/sentiment", "bert-base", "bert", "text-classification", "transformers", "text", 0.88, "lora", None),
    ("labs/plain", None, None, None, None, None, None, None, None),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("lite")
    registry = open_registry(root / "zoo")
    for i, (model, backbone, family, task, library, tags, accuracy, strategy, visibility) in enumerate(MODELS):
        for version in (1, 2):
            folder = root / f"ckpt-{i}-{version}"
            folder.mkdir()
            (folder / "model.safetensors").write_bytes(f"{model} {version}".encode())
            if backbone:
                (folder / "config.json").write_text(json.dumps({"backbone": {"name": backbone, "family": family}}))
            if accuracy is not None:
                (folder / "metrics.json").write_text(json.dumps({"accuracy": accuracy - 0.01 * (2 - version),
                                                                 "loss": 0.3}))
            if strategy:
                (folder / "recipe.yaml").write_text(f"strategy: {strategy}\n")
            meta = (f"pipeline_tag: {task}\n" if task else "") + (f"library_name: {library}\n" if library else "")
            card = complete_card(model.split("/")[1].replace("-", " ").title(), tags=tags, metadata=meta,
                                 body=f"About {model.split('/')[1]}, version {version}.")
            if model == "labs/plain" and version == 2:
                card = "# plain\n\nNo sections.\n"  # an incomplete card: --undocumented finds it
            (folder / "README.md").write_text(card)
            registry.push(folder, model, visibility=visibility, status="draft" if i == 1 and version == 2
                          else "published")
    registry.set_alias("acme/chest-xray", "production", 1)
    registry.deprecate("labs/sentiment@1", "old")
    # parents in the registry (one private) and outside it, reproductions, rankings, a message, a yanked version
    service = registry.service

    def files(text: str):
        return [service.store_file([complete_card("Child").encode()], "README.md"),
                service.store_file([text.encode()], "w.bin"), service.store_file([b"{}"], "config.json")]

    service.publish("labs/child", files("c1"), parent="acme/lungs@1", relation="finetune", message="from lungs")
    service.publish("labs/child", files("c2"), parent="torchvision:resnet50.IMAGENET1K_V2",
                    relation="feature-extraction")
    service.publish("labs/child", files("c3"), parent="acme/birds@1", relation="adapter")
    service.publish("labs/child", files("c4"), parent="labs/child@1")
    service.attest("labs/child@1", "bit-identical", {"device": "cpu", "versions": {"torch": "2"}}, {"sha256": "ab"})
    service.attest("labs/child@1", "differs", {"device": "cuda"})
    for rank, by in ((1, "logme"), (2, "nce")):
        service.record_rank("labs/child@1", "pneumonia", "0" * 64, by, {"logme": 0.5, "nce": -0.25}, rank, 3, 100)
    service.set_status("labs/child@4", "yanked", reason="bad")
    registry.service.engine.dispose()
    return root / "zoo"


CASES = [
    {}, {"query": "xray"}, {"query": "about version", "sort": "relevance"}, {"query": "nothingmatches"},
    {"task": "image-classification"}, {"backbone": "resnet18"}, {"family": "resnet", "sort": "name"},
    {"strategy": "lora"}, {"license": "cc-by-4.0"}, {"license": "mit"}, {"tag": "MEDICAL"},
    {"tag": ["medical", "xray"]}, {"tag": "zoo"}, {"tag": "birds"}, {"documented": True}, {"documented": False},
    {"metric": ("accuracy", ">=", 0.9)}, {"metric": ("accuracy", "<", 0.9), "sort": "accuracy"},
    {"sort": "accuracy"}, {"sort": "created"}, {"sort": "name", "page": 2, "per_page": 2},
    {"page": 9, "per_page": 2}, {"query": "acme", "family": "resnet", "metric": ("accuracy", ">", 0.5)},
    {"namespace": "labs"}, {"library": "zoo"}, {"modality": "image"},
    {"query": "chestxray"}, {"query": "Chest-Xray", "sort": "relevance"},  # hyphenated words, joined or split
]


@pytest.mark.parametrize("case", CASES, ids=[json.dumps(c, sort_keys=True) for c in CASES])
def test_the_same_answers_as_the_service(registry, case):
    lite = open_lite(str(registry))
    service = open_registry(registry)
    query = case.get("query")
    filters = {k: v for k, v in case.items() if k != "query"}
    assert lite.search(query, **filters) == service.search(query, **filters)
    service.service.engine.dispose()


@pytest.mark.parametrize("model", [m[0] for m in MODELS])
def test_versions_are_the_services(registry, model):
    lite = open_lite(str(registry))
    service = open_registry(registry)
    assert [v.as_dict() for v in lite.versions(model)] == [v.as_dict() for v in service.versions(model)]
    service.service.engine.dispose()


def test_show_is_the_services(registry):
    lite = open_lite(str(registry))
    service = open_registry(registry)
    refs = [f"{model}@{n}" for model in [m[0] for m in MODELS] + ["labs/child"] for n in (1, 2)]
    refs += ["labs/child", "labs/child@v3", "labs/child@4", "labs/child@latest", "acme/chest-xray@production",
             f"acme/lungs@{service.resolve('acme/lungs@2').commit}"]
    for ref in refs:
        assert lite.show(ref).as_dict() == service.resolve(ref).as_dict(), ref
    shown = lite.show("labs/child@1")
    assert shown.parents == [{"ref": "acme/lungs@1", "relation": "finetune"}] and len(shown.rankings) == 2
    assert [a["outcome"] for a in shown.attestations] == ["bit-identical", "differs"]
    assert lite.show("labs/child@3").parents == [{"ref": "acme/birds@1", "relation": "adapter"}]
    service.service.engine.dispose()


def test_the_service_answers_what_this_path_does_not(registry, tmp_path, monkeypatch):
    lite = open_lite(str(registry))
    for query, filters in (("50%", {}), (None, {"descendant_of": "acme/lungs@1"}), (None, {"relation": "finetune"}),
                           (None, {"reproduced": True})):
        assert lite.search(query, **filters) is None
    for model in ("acme/missing", "acme", "acme/lungs@1"):  # the service says what is wrong
        assert lite.versions(model) is None
    for ref in ("acme/missing", "acme", "acme/lungs@9", "acme/lungs@staging", "acme/lungs@" + "0" * 40, "a b/c"):
        assert lite.show(ref) is None
    assert open_lite(str(tmp_path / "none")) is None  # not created: the full path creates it
    assert open_lite("http://127.0.0.1:9") is None
    monkeypatch.setenv("ZOO_DATABASE_URL", "postgresql+psycopg://nowhere/zoo")
    assert open_lite(str(registry)) is None


def test_a_registry_behind_the_migrations_head_is_left_to_the_service(registry, tmp_path):
    import shutil
    import sqlite3

    copy = tmp_path / "old"
    shutil.copytree(registry, copy)
    with sqlite3.connect(copy / "registry.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0001_initial'")
    assert open_lite(str(copy)) is None


def zoo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`zoo ARGS` in a fresh interpreter that then prints which database modules it imported."""
    code = (f"import sys\nsys.argv = ['zoo', *{list(args)!r}]\nfrom zoo_core.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('LOADED=' + ','.join(m for m in ('sqlalchemy', 'sqlmodel') if m in sys.modules))\n")
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_zoo_search_versions_and_show_on_a_local_registry_import_no_sqlalchemy(registry):
    result = zoo("search", "xray", "--json", env={"ZOO_REGISTRY": str(registry)})
    assert result.returncode == 0, result.stderr
    *answer, loaded = result.stdout.strip().splitlines()
    assert loaded == "LOADED="
    assert [r["id"] for r in json.loads("\n".join(answer))["results"]] == ["acme/chest-xray"]
    result = zoo("versions", "acme/lungs", "--json", env={"ZOO_REGISTRY": str(registry)})
    assert result.returncode == 0, result.stderr
    *answer, loaded = result.stdout.strip().splitlines()
    assert loaded == "LOADED=" and [v["number"] for v in json.loads("\n".join(answer))] == [1, 2]
    result = zoo("show", "labs/child@1", "--json", env={"ZOO_REGISTRY": str(registry)})
    assert result.returncode == 0, result.stderr
    *answer, loaded = result.stdout.strip().splitlines()
    assert loaded == "LOADED=" and json.loads("\n".join(answer))["parents"][0]["ref"] == "acme/lungs@1"
    result = zoo("show", "labs/child@3", env={"ZOO_REGISTRY": str(registry)})  # the table, without --json
    assert result.returncode == 0 and "acme/birds@1 (adapter)" in result.stdout, result.stderr
    # literal text goes to the service, which imports them: the probe sees them
    result = zoo("search", "50%", "--json", env={"ZOO_REGISTRY": str(registry)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "LOADED=sqlalchemy,sqlmodel"
