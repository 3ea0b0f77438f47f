"""What needs an NVIDIA GPU: device placement, mixed precision, nccl (one rank), tiny BERT and ResNet fine-tunes.
Skipped without CUDA; scripts/gpu-check.sh runs this file on a GPU machine and prints a table of the results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU and a CUDA torch")]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def test_training_runs_on_the_gpu_and_the_checkpoint_loads_on_cpu(tmp_path, tiny_recipe):
    import zoo_core
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.train import Engine

    recipe = tiny_recipe(tmp_path, "finetune", train={"device": "cuda"})
    engine = Engine(recipe_from_dict(recipe), progress=False)
    assert engine.device.type == "cuda" and next(engine.model.parameters()).is_cuda
    result = tiny_recipe.run(recipe)
    loaded = zoo_core.load_checkpoint(result.checkpoint)
    assert next(loaded.model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_is_recorded(tmp_path, tiny_recipe, precision):
    result = tiny_recipe.train(tmp_path, "finetune", train={"device": "cuda", "precision": precision, "epochs": 3,
                                                            "grad_accum_steps": 2})
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result.history)
    resolved = yaml.safe_load((result.checkpoint / "recipe.yaml").read_text())
    assert resolved["train"]["precision"] == precision and resolved["train"]["grad_accum_steps"] == 2


def test_nccl_with_one_rank(tmp_path, tiny_recipe, zoo):
    """`zoo train --nproc 1` on CUDA: torchrun, an nccl process group, DDP and the gathers, on one GPU."""
    path = tiny_recipe.write(tiny_recipe(tmp_path, "finetune", train={"device": "cuda"}), tmp_path / "r.yaml")
    run = zoo("train", str(path), "--nproc", "1", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["metrics"]["accuracy"] >= 0
    resolved = yaml.safe_load((tmp_path / "out" / "recipe.yaml").read_text())
    assert resolved["resolved"]["distributed"]["backend"] == "nccl"
    assert resolved["resolved"]["distributed"]["device"] == "cuda"


def test_resnet18_finetunes_on_the_gpu(tmp_path, tiny_recipe):
    pytest.importorskip("zoo_torchvision", reason="zoo-torchvision needs a torchvision matching this torch")
    result = tiny_recipe.train(tmp_path, "finetune", base="scratch:resnet18",
                               data={"labels_per_class": 64, "image_size": 64, "limit": {"val": 64, "test": 128}},
                               train={"device": "cuda", "precision": "bf16", "epochs": 3, "batch_size": 32,
                                      "lr": 0.002})
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]  # it learns
    assert set(result.metrics) >= {"accuracy", "loss"}


def test_tiny_bert_trains_on_the_gpu(tmp_path, tiny_recipe):
    """bert-tiny from scratch with a word-level tokenizer built from the SST-2 sample (nothing downloaded), in bf16.
    A BERT from random weights needs many steps on the same examples before its loss moves: 16 sentences, one batch
    an epoch, 30 epochs (with 64 sentences and 2 epochs the loss only wandered around log 2; seen on an H200)."""
    from transformers import BertTokenizerFast

    texts = [line.split("\t", 1)[1] for line in (EXAMPLES / "sst2_train_sample.tsv").read_text().splitlines()[1:]]
    words = sorted({w for t in texts for w in t.lower().split()})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "tokenizer")
    data = {"reader": "csv", "args": {"files": {"train": str(EXAMPLES / "sst2_train_sample.tsv"),
                                                "test": str(EXAMPLES / "sst2_dev_sample.tsv")},
                                      "text": 1, "label": 0, "classes": ["negative", "positive"]},
            "tokenizer": str(tmp_path / "tokenizer"), "max_length": 48, "labels_per_class": 8,
            "limit": {"val": 16, "test": 32}}
    result = tiny_recipe.train(tmp_path, "scratch", base="scratch:bert-tiny", data=data,
                               train={"device": "cuda", "precision": "bf16", "epochs": 30, "batch_size": 16,
                                      "lr": 0.001})
    losses = [r["train_loss"] for r in result.history]
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses  # it fits the 16 sentences (0.71 -> 0.40 on CPU)
    assert (result.checkpoint / "model.safetensors").is_file()


if __name__ == "__main__":  # `python tests/test_cuda.py`: the same as pytest -m cuda
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", __file__, "-q"]))
