"""zoo-wordvectors: word2vec vectors trained here with gensim on SST-2's training text, saved in each file format,
read back through the plugin (the same vectors as gensim's), transferred to SST-2 sentiment (better than random
vectors with the same recipe), saved, predicted, pushed and pulled, and trained with every strategy."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors, Word2Vec
from safetensors.torch import load_file
from zoo_wordvectors import VOCAB_FILE, read_vocabulary, sif_weights, tokenize

import zoo_core
from zoo_core.errors import WeightsError, ZooError
from zoo_core.recipe import recipe_from_dict
from zoo_core.run import run_recipe

ROOT = Path(__file__).resolve().parents[3]
SST2 = ROOT.parent / "shared" / "data" / "sst2"
SAMPLE = ROOT / "examples" / "data"
ZOO = Path(sys.executable).parent / "zoo"
STRATEGIES = ["linear-probe", "freeze", "finetune", "gradual-unfreeze", "bitfit", "lora", "scratch"]
CLASSES = ["negative", "positive"]


def read_tsv(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]


@pytest.fixture(autouse=True)
def one_thread():
    """Batches of a few dozen 50-d vectors gain nothing from more threads, and lose a lot on a busy machine (a run
    took 40 s with two threads beside other jobs, 4 s with one); the setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Skip-gram word2vec (50 dimensions, 3 epochs, one worker, seed 0) on the 67,349 texts of SST-2's training
    split (labels unused), saved in each format the plugin reads; and 250 labelled training sentences a class."""
    if not SST2.is_dir():
        pytest.skip("../shared/data/sst2 is not present")
    rows = read_tsv(SST2 / "train.tsv")
    texts = [tokenize(row[1].lower()) for row in rows]
    model = Word2Vec(texts, vector_size=50, window=5, min_count=2, sg=1, epochs=3, workers=1, seed=0)
    folder = tmp_path_factory.mktemp("vectors")
    labels, rng = np.array([int(row[0]) for row in rows]), np.random.default_rng(0)
    chosen = sorted(np.concatenate([rng.choice(np.flatnonzero(labels == c), 250, replace=False) for c in (0, 1)]))
    # a smaller file to read than the 67,349 rows (the reader parses it once per run)
    (folder / "labelled.tsv").write_text("label\tsentence\n" + "".join(f"{rows[i][0]}\t{rows[i][1]}\n"
                                                                       for i in chosen))
    files = {"glove": folder / "glove.50d.txt", "word2vec-binary": folder / "vectors.bin.gz",
             "word2vec-text": folder / "vectors.txt", "fasttext": folder / "vectors.vec"}
    model.wv.save_word2vec_format(str(files["glove"]), write_header=False)
    model.wv.save_word2vec_format(str(files["word2vec-binary"]), binary=True)
    model.wv.save_word2vec_format(str(files["word2vec-text"]))
    model.wv.save_word2vec_format(str(files["fasttext"]))
    files["labelled"] = folder / "labelled.tsv"
    return model.wv, files


REFERENCES = {"glove": ("glove", dict(no_header=True)), "word2vec-binary": ("word2vec", dict(binary=True)),
              "word2vec-text": ("word2vec", {}), "fasttext": ("fasttext", {})}


@pytest.mark.parametrize("kind", list(REFERENCES))
def test_each_format_loads_gensims_vectors_row_for_row(trained, kind):
    wv, files = trained
    scheme, gensim_args = REFERENCES[kind]
    weights = zoo_core.load_weights(f"{scheme}:{files[kind]}")
    expected = KeyedVectors.load_word2vec_format(str(files[kind]), **gensim_args)
    table = weights.state_dict["embedding.weight"]
    assert weights.origin == f"{scheme}:{files[kind]}"
    assert weights.spec.name == "word-vectors" and weights.spec.feature_dim == 50
    assert weights.spec.options["vocab_size"] == len(wv) + 2 == table.shape[0]
    assert torch.equal(table[2:], torch.from_numpy(expected.vectors))  # exactly what gensim reads
    assert torch.equal(table[2:], torch.from_numpy(wv.vectors))  # and what was trained (text keeps float32 exact)
    assert not table[:2].any()  # padding and UNK start at zero
    encoder = weights.spec.make_encoder(weights.preprocessing)
    assert encoder.words[2:] == wv.index_to_key  # row i + 2 is the file's i-th word
    ids = encoder(["a gripping , funny movie"])["input_ids"][0].tolist()
    assert ids == [wv.key_to_index[word] + 2 for word in ["a", "gripping", ",", "funny", "movie"]]


def test_limit_keeps_the_most_frequent_words(trained):
    wv, files = trained
    weights = zoo_core.load_weights(f"glove:{files['glove']}?limit=100")
    assert weights.origin.endswith("?limit=100") and weights.spec.options["vocab_size"] == 102
    assert torch.equal(weights.state_dict["embedding.weight"][2:], torch.from_numpy(wv.vectors[:100]))


def test_bad_references_say_what_is_wrong(trained, tmp_path):
    _, files = trained
    cases = {
        f"glove:{tmp_path / 'nowhere.txt'}": "there is no file",
        f"word2vec:{tmp_path}": "it is a folder",
        f"glove:{files['word2vec-text']}": "use word2vec:PATH or fasttext:PATH",
        f"word2vec:{files['glove']}": "use glove:PATH",
        f"fasttext:{files['glove']}": "no 'COUNT DIM' header",
    }
    (tmp_path / "empty.txt").write_text("")
    cases[f"glove:{tmp_path / 'empty.txt'}"] = "is empty"
    (tmp_path / "model.bin").write_bytes(np.array([793712314, 12], dtype="<i4").tobytes() + b"\0" * 64)
    cases[f"fasttext:{tmp_path / 'model.bin'}"] = "fastText .bin model; give its .vec file"
    (tmp_path / "ragged.txt").write_text("the 0.1 0.2 0.3\nof 0.4 0.5\n")
    cases[f"glove:{tmp_path / 'ragged.txt'}"] = "is not a valid GloVe text"
    (tmp_path / "words.txt").write_text("just some words\n")
    cases[f"glove:{tmp_path / 'words.txt'}"] = "is this a GloVe text file"
    for reference, message in cases.items():
        with pytest.raises(WeightsError, match=message.replace(".", r"\.").replace("(", r"\(")):
            zoo_core.load_weights(reference)
    with pytest.raises(WeightsError, match="pooling 'attention' is not one of mean, max, sif"):
        zoo_core.get_backbone("word-vectors").for_options({"pooling": "attention"})
    with pytest.raises(WeightsError, match="no option 'pooler'"):
        zoo_core.get_backbone("word-vectors").for_options({"pooler": "max"})


def small_vectors(folder: Path) -> str:
    """Three 2-d vectors in GloVe's format, by falling frequency."""
    path = folder / "tiny.txt"
    path.write_text("the 1 0\ngood 0 2\nFilm -1 4\n")
    return f"glove:{path}"


def test_pooling_tokenisation_and_out_of_vocabulary(tmp_path):
    weights = zoo_core.load_weights(small_vectors(tmp_path))
    assert tokenize("It's a well-made film, isn't it?") == ["It's", "a", "well-made", "film", ",", "isn't", "it",
                                                          "?"]
    assert tokenize("the film 's charm") == ["the", "film", "'s", "charm"]
    features = {}
    for pooling in ("mean", "max", "sif"):
        for oov in ("unk", "skip"):
            spec = weights.spec.for_options({**weights.spec.options, "pooling": pooling, "oov": oov})
            model = spec.create_model(2).eval()
            model.load_backbone_state(weights.state_dict, weights.origin)
            batch = spec.make_encoder(weights.preprocessing)(["The GOOD film zzz", "zzz", ""])
            with torch.no_grad():
                features[pooling, oov] = model.features(batch)
    # "The" and "GOOD" are found lowercased, "film" as "Film" is not (lookups: as written, then lowercased);
    # `unk` counts the two unknown words as (trainable, zero) UNK vectors, `skip` drops them
    assert features["mean", "unk"][0].tolist() == [0.25, 0.5]
    assert features["mean", "skip"][0].tolist() == [0.5, 1.0]
    assert features["max", "skip"][0].tolist() == [1.0, 2.0]
    assert features["max", "unk"][1].tolist() == [0.0, 0.0] and features["max", "skip"][1].tolist() == [0.0, 0.0]
    for key, value in features.items():
        assert value[2].tolist() == [0.0, 0.0], key  # no token at all: zeros, not NaN
    w = sif_weights(5, 1e-3)  # Zipf: p(rank r) = 1 / (r H_3), H_3 = 11/6
    assert torch.allclose(w[2:], torch.tensor([1e-3 / (1e-3 + 6 / 11 / r) for r in (1, 2, 3)]))
    expected = (w[2] * torch.tensor([1.0, 0]) + w[3] * torch.tensor([0, 2.0])) / 2
    assert torch.allclose(features["sif", "skip"][0], expected)


def sst2_recipe(labelled: Path, base: str, strategy, seed: int, output: Path | None = None, **fields) -> dict:
    """SST-2 sentiment: 200 training sentences a class (a tenth of the 500 kept for validation), the full test
    split (1,821 sentences)."""
    data = {"reader": "csv", "args": {"files": {"train": str(labelled), "test": str(SST2 / "test.tsv")},
                                      "text": 1, "label": 0, "classes": CLASSES},
            "labels_per_class": 200}
    recipe = {"base": base, "strategy": strategy, "data": data,
              "train": {"epochs": 10, "batch_size": 32, "lr": 0.01, "seed": seed},
              "card": {"license": "apache-2.0", "language": ["en"], "datasets": ["sst2"],
                       "intended_use": "a test of word-vector transfer", "limitations": "200 sentences a class"},
              **fields}
    if output is not None:
        recipe["output"] = str(output)
    return recipe


def run(recipe: dict):
    return run_recipe(recipe_from_dict(recipe), progress=False, log=lambda message: None)


def test_pretrained_vectors_beat_random_ones_then_predict_push_and_load(trained, tmp_path):
    """The same recipe (400 labelled sentences, 10 epochs, everything trains at lr 0.01) from the word2vec vectors
    and from random ones (strategy scratch: the same vocabulary, random vectors), over three seeds."""
    _, files = trained
    base, labelled = f"word2vec:{files['word2vec-binary']}", files["labelled"]
    train_all = {"name": "finetune", "backbone_lr_scale": 1.0, "warmup_epochs": 0}  # scratch's learning rates
    pretrained = [run(sst2_recipe(labelled, base, train_all, seed, tmp_path / "w2v" if seed == 0 else None))
                  for seed in range(3)]
    random = [run(sst2_recipe(labelled, base, "scratch", seed)) for seed in range(3)]
    accuracy = {name: [r.metrics["accuracy"] for r in runs] for name, runs in [("word2vec", pretrained),
                                                                                 ("random", random)]}
    print("SST-2 test accuracy, 200 labels a class, seeds 0-2:", accuracy)
    assert np.mean(accuracy["word2vec"]) > np.mean(accuracy["random"]) + 0.03, accuracy
    assert np.mean(accuracy["word2vec"]) > 0.6, accuracy
    pretrained = pretrained[0]

    out = pretrained.checkpoint
    words = read_vocabulary(out / VOCAB_FILE)
    state = load_file(out / "model.safetensors")
    assert state["backbone.embedding.weight"].shape == (len(words), 50)
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"]["name"] == "word-vectors" and config["backbone"]["plugin"] == "wordvectors"
    assert config["preprocessing"]["tokenizer"] == base
    texts = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés", "zzzz"]
    loaded = zoo_core.load(out)
    predictions = loaded.predict(texts, top_k=2)
    with torch.no_grad():  # the reloaded checkpoint computes what the trained model did
        encoder = pretrained.model.spec.make_encoder(files=out)
        probs = pretrained.model.eval()(encoder(texts)).softmax(1)
    for row, p in zip(predictions, probs, strict=True):
        assert abs(dict(row)["positive"] - float(p[1])) < 1e-5

    cli = subprocess.run([str(ZOO), "predict", str(out), "--json", *texts[:2]], capture_output=True, text=True,
                         check=True)
    rows = json.loads(cli.stdout)
    for row, [(label, probability)] in zip(rows, loaded.predict(texts[:2]), strict=True):
        assert row["predictions"][0]["label"] == label
        assert abs(row["predictions"][0]["probability"] - probability) < 1e-5
    zoo_core.open_registry(tmp_path / "registry").push(out, "acme/sst2-word2vec")
    pulled = zoo_core.load("acme/sst2-word2vec@1", registry=str(tmp_path / "registry"))
    assert (pulled.path / VOCAB_FILE).is_file()
    assert pulled.predict(texts, top_k=2) == predictions


def sample_recipe(base: str, strategy, output: Path, **fields) -> dict:
    """The SST-2 sample shipped in examples/data: 400 training and 200 test sentences, two epochs."""
    data = {"reader": "csv", "args": {"files": {"train": str(SAMPLE / "sst2_train_sample.tsv"),
                                                "test": str(SAMPLE / "sst2_dev_sample.tsv")},
                                      "text": 1, "label": 0, "classes": CLASSES},
            "labels_per_class": 40, "limit": {"val": 20, "test": 60}}
    return {"base": base, "strategy": strategy, "data": data, "output": str(output),
            "train": {"epochs": 2, "batch_size": 16, "lr": 0.01, "seed": 0}, **fields}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_trains_and_its_checkpoint_reloads(trained, tmp_path, strategy):
    wv, files = trained
    result = run(sample_recipe(f"word2vec:{files['word2vec-binary']}", strategy, tmp_path / strategy))
    trained_vectors = result.model.backbone.embedding.weight.detach().cpu()
    kept = torch.equal(trained_vectors[2:], torch.from_numpy(wv.vectors)) and not trained_vectors[:2].any()
    # linear-probe and bitfit (an embedding table has no bias) leave the vectors as they are; freeze trains from
    # the top backbone group, here the only one; lora merges its low-rank update into the table
    assert kept == (strategy in ("linear-probe", "bitfit")), strategy
    if strategy == "lora":
        assert (result.checkpoint / "adapter_model.safetensors").is_file()
    loaded = zoo_core.load(result.checkpoint)
    assert torch.equal(loaded.model.backbone.embedding.weight, trained_vectors)
    [[(label, _)]] = loaded.predict(["an engrossing and moving film"])
    assert label in CLASSES


def test_pooling_option_is_kept_by_the_checkpoint_and_its_next_run(trained, tmp_path):
    _, files = trained
    result = run(sample_recipe(f"glove:{files['glove']}", "linear-probe", tmp_path / "sif",
                               backbone_options={"pooling": "sif", "oov": "skip"}))
    loaded = zoo_core.load(result.checkpoint)
    assert loaded.model.spec.options["pooling"] == "sif" and loaded.model.spec.options["oov"] == "skip"
    assert torch.equal(loaded.model.backbone.token_weights, sif_weights(loaded.model.spec.options["vocab_size"], 1e-3))
    # the checkpoint as the next base: its vectors, words (vocab.txt) and options carry over
    again = run(sample_recipe(f"file:{result.checkpoint}", "linear-probe", tmp_path / "again"))
    assert again.model.spec.options == loaded.model.spec.options
    assert torch.equal(again.model.backbone.embedding.weight, loaded.model.backbone.embedding.weight)
    assert (again.checkpoint / VOCAB_FILE).read_bytes() == (result.checkpoint / VOCAB_FILE).read_bytes()


def test_scratch_base_and_a_foreign_tokenizer_are_refused(trained, tmp_path):
    _, files = trained
    scratch = sample_recipe("scratch", "finetune", tmp_path / "x", backbone="word-vectors")
    with pytest.raises(WeightsError, match="no vocabulary of its own.*strategy: scratch"):
        run(scratch)
    recipe = sample_recipe(f"glove:{files['glove']}", "finetune", tmp_path / "y")
    recipe["data"]["tokenizer"] = "hf:bert-base-uncased"
    with pytest.raises(ZooError, match="data.tokenizer cannot be set for word-vectors"):
        run(recipe)
