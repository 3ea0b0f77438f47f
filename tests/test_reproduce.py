"""`zoo reproduce`: the demo's chain in miniature (a pretrain on MNIST digits, then a transfer of it to chest
X-rays), rebuilt bit-for-bit from the registry; refusals for changed data and a missing base; a changed thread
count reported within tolerance; attestations recorded over HTTP and shown by the CLI, the API and the catalog."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

import zoo_core
from zoo_core.errors import DataMismatchError, MissingBaseError, ZooError
from zoo_core.recipe import recipe_from_dict
from zoo_core.reproduce import reproduce, reproduce_chain
from zoo_core.run import run_recipe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def train(tmp: Path, name: str, base: str, args: dict, strategy: str = "finetune", **fields) -> None:
    """tinynet at 32x32 on 8 examples a class, 2 epochs, 2 threads pinned (the thread-count test runs with 1)."""
    recipe = {"base": base, "strategy": strategy, "head": {"dropout": 0.1},
              "data": {"reader": "npz", "args": args, "labels_per_class": 8, "image_size": 32,
                       "limit": {"val": 16, "test": 24}},
              "train": {"epochs": 2, "batch_size": 8, "lr": 0.01, "seed": 0, "num_threads": 2},
              "card": {"intended_use": "tests", "limitations": "tiny", "license": "cc-by-4.0"},
              "output": str(tmp / name), "publish": f"acme/{name}", **fields}
    run_recipe(recipe_from_dict(copy.deepcopy(recipe)), progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """acme/mnist-tiny@1 (tinynet from scratch on digits) -> acme/pneumonia-tiny@1 (finetuned from it, resolved
    through the registry), each trained by its recipe and published with its lineage, the data in a folder of
    its own (tests change it)."""
    tmp = tmp_path_factory.mktemp("reproduce")
    data = tmp / "data"
    data.mkdir()
    for name in ("mnist_sample.npz", "pneumoniamnist_sample.npz"):
        shutil.copy(EXAMPLES / "data" / name, data / name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_REGISTRY", str(tmp / "registry"))
        # dropout is on: its randomness is pinned too; the digits have no val split: one is carved, seeded
        train(tmp, "mnist-tiny", "scratch:tinynet", {"path": str(data / "mnist_sample.npz")}, strategy="scratch")
        train(tmp, "pneumonia-tiny", "zoo:acme/mnist-tiny@latest", pneumonia_args(data))
        registry = zoo_core.open_registry()
    return registry, tmp, data


def pneumonia_args(data: Path) -> dict:
    return {"path": str(data / "pneumoniamnist_sample.npz"), "classes": ["normal", "pneumonia"]}


def sha_of(registry, ref: str) -> str:
    return next(f["sha256"] for f in registry.resolve(ref).files if f["path"] == "model.safetensors")


def test_the_chain_is_rebuilt_bit_for_bit_on_the_cpu(chain, tmp_path):
    registry, _, _ = chain
    links = reproduce_chain("acme/pneumonia-tiny@latest", registry, output=tmp_path)
    assert [link.ref for link in links] == ["acme/mnist-tiny@1", "acme/pneumonia-tiny@1"]
    for link in links:
        assert link.outcome == "bit-identical" and link.expected == "bit-identical", link.differed
        assert link.sha256 == sha_of(registry, link.ref) and link.max_weight_difference == 0
        assert link.differed == []
    # the transfer was rebuilt from the rebuilt pretrain, whose weights are the recorded base's
    assert links[1].notes[0] == f"base: the reproduced parent at {links[0].checkpoint}"
    assert next(r for r in links[1].rows if r.what == "base weights").same
    resolved = yaml.safe_load((links[1].checkpoint / "recipe.yaml").read_text())["resolved"]
    assert resolved["defaults"]["train.warmup_epochs"] == 1.0  # finetune's default, written down
    assert resolved["determinism"]["num_threads"] == 2 and resolved["determinism"]["deterministic_algorithms"]
    assert resolved["environment"]["cpu_capability"] and resolved["nondeterministic"] == []
    assert "## Reproducibility" in (links[1].checkpoint / "README.md").read_text()


def test_another_thread_count_is_within_tolerance_with_the_largest_weight_difference(chain, tmp_path):
    registry, _, _ = chain
    link = reproduce("acme/mnist-tiny@1", registry, threads=1, tolerance=0.05, output=tmp_path)
    assert link.expected == "within tolerance"  # 1 thread instead of the recorded 2: bit-identity is not owed
    assert link.outcome == "within tolerance", [r for r in link.rows if not r.same]
    assert "setting num_threads" in link.differed and "weights sha256" in link.differed
    assert 0 < link.max_weight_difference < 1 and link.max_weight_tensor
    threads = next(r for r in link.rows if r.what == "setting num_threads")
    assert (threads.recorded, threads.reproduced) == (2, 1)


def test_a_changed_data_file_is_refused_naming_the_file_and_the_split(chain, tmp_path):
    registry, _, data = chain
    path = data / "pneumoniamnist_sample.npz"
    original = path.read_bytes()
    arrays = dict(np.load(path))
    arrays["train_images"] = 255 - arrays["train_images"]  # the training images change, val and test do not
    try:
        np.savez(path, **arrays)
        with pytest.raises(DataMismatchError) as refused:
            reproduce("acme/pneumonia-tiny@1", registry, output=tmp_path)
    finally:
        path.write_bytes(original)
    message = str(refused.value)
    assert str(path) in message and "split 'train'" in message and "split 'test'" not in message
    # moved elsewhere, the data is found by name in a --data folder
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(path, moved / path.name)
    try:
        with pytest.raises(DataMismatchError, match="pneumoniamnist_sample.npz.*neither at"):
            reproduce("acme/pneumonia-tiny@1", registry, output=tmp_path)
        link = reproduce("acme/pneumonia-tiny@1", registry, data_dirs=[moved], output=tmp_path)
        assert link.outcome == "bit-identical" and f"found at {moved / path.name}" in link.notes[0]
        (moved / path.name).rename(moved / "xrays.npz")  # renamed too: found by its content
        link = reproduce("acme/pneumonia-tiny@1", registry, data_dirs=[tmp_path], output=tmp_path)
        assert link.outcome == "bit-identical" and f"found at {moved / 'xrays.npz'}" in link.notes[0]
    finally:
        shutil.move(next(moved.iterdir()), path)


def test_a_missing_base_is_refused(chain, tmp_path):
    registry, tmp, data = chain
    base = tmp_path / "base"
    shutil.copytree(tmp / "mnist-tiny", base)
    train(tmp_path, "orphan", f"file:{base}", pneumonia_args(data), publish=None)
    registry.push(tmp_path / "orphan", "acme/orphan")  # no --parent: the base is only a path on this machine
    shutil.rmtree(base)
    with pytest.raises(MissingBaseError, match=f"its base file:{base} is not in the registry's lineage"):
        reproduce("acme/orphan@1", registry, output=tmp_path / "again")


def test_an_attestation_is_recorded_over_http_and_shown_everywhere(chain, serve, zoo):
    registry, tmp, _ = chain
    url = serve(tmp / "registry")
    token = registry.create_token("lab")
    done = zoo("reproduce", "acme/pneumonia-tiny@1", "--record", "--registry", url, "--json",
                   env={"ZOO_TOKEN": token, "HF_HUB_OFFLINE": "0"}, check=True)
    [link] = json.loads(done.stdout)
    assert link["outcome"] == "bit-identical" and link["recorded"]
    anonymous = httpx.post(f"{url}/api/models/acme/pneumonia-tiny/versions/1/attestations",
                           json={"outcome": "bit-identical"})
    assert anonymous.status_code == 401  # whoever attests is recorded: a token is needed
    version = httpx.get(f"{url}/api/models/acme/pneumonia-tiny/versions/1").json()
    [recorded] = version["attestations"]
    assert recorded["outcome"] == "bit-identical" and recorded["by"] == "lab"
    assert recorded["environment"]["cpu_capability"] and recorded["details"]["sha256"] == link["sha256"]
    page = httpx.get(f"{url}/acme/pneumonia-tiny/v/1").text
    assert "reproduced ✓" in page and "<strong>bit-identical</strong>" in page
    assert "reproduced ✓" not in httpx.get(f"{url}/acme/mnist-tiny/v/1").text
    found = httpx.get(f"{url}/api/search", params={"reproduced": "true"}).json()
    assert [r["id"] for r in found["results"]] == ["acme/pneumonia-tiny"]
    shown = zoo("show", "acme/pneumonia-tiny@1", "--registry", url, check=True).stdout
    assert "reproduction: bit-identical by lab" in shown
    listed = json.loads(zoo("search", "--reproduced", "--json", "--registry", url, check=True).stdout)
    assert [r["id"] for r in listed["results"]] == ["acme/pneumonia-tiny"]
    # an attestation that says "differs" is kept, and does not count as reproduced
    assert registry.attest("acme/mnist-tiny@1", "differs")["outcome"] == "differs"
    assert registry.search(reproduced=True)["total"] == 1
    with pytest.raises(ZooError, match="outcome is one of"):
        registry.attest("acme/mnist-tiny@1", "close enough")


def test_operations_without_a_deterministic_implementation_are_named_once_and_other_warnings_pass():
    import warnings

    from zoo_core.determinism import nondeterminism_log

    torch_says = ("adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, but you set "
                  "'torch.use_deterministic_algorithms(True, warn_only=True)'. You can file an issue at ...")
    with pytest.warns(UserWarning, match="unrelated") as passed, nondeterminism_log() as found:
        for _ in range(3):
            warnings.warn(torch_says, UserWarning, stacklevel=1)
            warnings.warn("unrelated", UserWarning, stacklevel=1)
    assert found == ["adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation"]
    assert [str(w.message) for w in passed] == ["unrelated"]
