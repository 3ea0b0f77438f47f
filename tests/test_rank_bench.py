"""bench/rank.py's candidates and targets (bench/_rank_sets.py): a source never sees its target's examples, the text
sources are what they claim to be, and a cached candidate is reused only for the very recipe and data it was
trained from."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def rows(path: Path) -> list[tuple[str, str]]:
    """(label, text) of a TSV with a header, the text's whitespace collapsed as the benchmark writes it."""
    lines = Path(path).read_text().splitlines()
    return [(label, " ".join(text.split())) for label, text in (line.split("\t", 1) for line in lines[1:])]


def test_text_sources_are_disjoint_from_the_target_and_hold_what_they_claim(tmp_path, shared_data):
    import _rank_sets

    sets = _rank_sets.text_sets(tmp_path, source_cap=200, test_cap=50)
    assert Path(sets["sst2"]["source"]).read_text().startswith("label\tsentence\n")
    source, pool = rows(sets["sst2"]["source"]), rows(sets["sst2"]["target"])
    assert len(source) == 200 and all(len(text.split()) >= 5 for _, text in source)
    train = rows(shared_data / "sst2" / "train.tsv")
    assert len(pool) == len(train) - len(train) // 2
    # SST-2 repeats some phrases; no source row is a row of the target's pool unless SST-2 itself repeats it
    repeated = {row for row, count in Counter(train).items() if count > 1}
    assert not (set(source) & set(pool)) - repeated
    assert rows(sets["sst2"]["test"]) == rows(shared_data / "sst2" / "test.tsv")[:50]
    shuffled = rows(sets["sst2-shuffled"]["source"])
    assert [t for _, t in shuffled] == [t for _, t in source]  # the same sentences, their labels permuted
    assert Counter(label for label, _ in shuffled) == Counter(label for label, _ in source)
    assert [label for label, _ in shuffled] != [label for label, _ in source]
    words = sorted(len(t.split()) for _, t in source)
    assert all(label == str(int(len(t.split()) > words[100])) for label, t in rows(sets["length"]["source"]))
    language = rows(sets["language"]["source"])
    english = {t for _, t in source}
    assert Counter(label for label, _ in language) == {"0": 100, "1": 100}
    assert all((label == "0") == (text in english) for label, text in language)
    cedr = rows(sets["cedr"]["source"])
    assert len(cedr) == 200 and not english & {t for _, t in cedr}
    (tmp_path / "again").mkdir()  # seeded: the same files every run
    again = _rank_sets.text_sets(tmp_path / "again", source_cap=200, test_cap=50)
    assert all(Path(again[k]["source"]).read_bytes() == Path(sets[k]["source"]).read_bytes() for k in sets)


def test_a_cached_candidate_is_reused_only_for_the_same_recipe_and_data(tmp_path, tiny_recipe):
    import _rank_sets

    recipe = tiny_recipe(tmp_path, train={"epochs": 1})
    del recipe["output"]
    data = tmp_path / "data.bin"
    data.write_bytes(b"one")
    said = []
    first = _rank_sets.candidate(tmp_path / "cache", "tiny>x", recipe, [data])
    assert _rank_sets.build([first], 1, said.append)["tiny>x"] > 0
    assert first.built() and first.folder.name.startswith("tiny-x-")
    stamp = (first.folder / "model.safetensors").stat().st_mtime_ns
    again = _rank_sets.candidate(tmp_path / "cache", "tiny>x", recipe, [data])
    assert again.folder == first.folder and _rank_sets.build([again], 1, said.append) == {"tiny>x": 0.0}
    assert (first.folder / "model.safetensors").stat().st_mtime_ns == stamp  # not trained again
    assert said[-1] == "candidate tiny>x: in the cache"
    data.write_bytes(b"two")  # the data changed: another candidate
    assert _rank_sets.candidate(tmp_path / "cache", "tiny>x", recipe, [data]).folder != first.folder
    longer = {**recipe, "train": {**recipe["train"], "epochs": 2}}
    assert _rank_sets.candidate(tmp_path / "cache", "tiny>x", longer, [data]).folder != first.folder
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_a_descendant_is_built_after_its_parent_and_a_worker_builds_what_this_process_builds(tmp_path, tiny_recipe):
    import hashlib

    import _rank_sets
    import torch

    def plan(cache: Path) -> list:
        source = tiny_recipe(tmp_path, train={"epochs": 1})
        del source["output"]
        parent = _rank_sets.candidate(cache, "src", source, [])
        child = _rank_sets.candidate(cache, "src>again", {**source, "base": parent.ref}, [], parent, cost=9)
        return [child, parent]  # the descendant first, and dearer: it must still wait for its parent

    def digest(c) -> str:
        return hashlib.sha256((c.folder / "model.safetensors").read_bytes()).hexdigest()

    said, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' one thread: the same arithmetic
    try:
        here = plan(tmp_path / "here")
        seconds = _rank_sets.build(here, 1, said.append)
    finally:
        torch.set_num_threads(threads)
    assert [m.split(":")[0] for m in said] == ["candidate src", "candidate src>again"]
    assert set(seconds) == {"src", "src>again"} and all(s > 0 for s in seconds.values())
    assert here[0].built() and digest(here[0]) != digest(here[1])
    # in a worker process, the same weights (each candidate costs a spawned process, seconds: the parent only)
    there = plan(tmp_path / "there")[1]
    assert _rank_sets.build([there], 2, said.append)["src"] > 0
    assert digest(there) == digest(here[1])  # bit for bit


def test_the_published_scores_prefer_informative_features_to_noise():
    """bench/_published_scores.py: each score rates features that carry the labels above features that do not,
    and TransRate's coding rate on the smaller Gram matrix equals the definition's D x D determinant."""
    import _published_scores
    import numpy as np

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 20)
    noise = rng.normal(size=(80, 16))  # more examples than dimensions: SFDA's discriminant fits any N < D labels
    informative = noise + 2.0 * np.eye(16)[labels * 4]  # each class shifted along its own direction
    good, bad = _published_scores.scores(informative, labels), _published_scores.scores(noise, labels)
    assert set(good) == set(_published_scores.PUBLISHED)
    assert all(good[name] > bad[name] for name in good), (good, bad)
    for z in (noise, noise[:10]):  # N > D and N < D
        z = z - z.mean(0)
        n, d = z.shape
        direct = 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * 1e-4))[1]
        assert np.isclose(_published_scores._coding_rate(z, 1e-4), direct)


def test_the_ceilings_and_the_brute_force_are_measured_against_the_ground_truth_they_claim():
    """bench/rank.py: 'once' (one seed's accuracies against the mean of the other seeds) and every score's 'rest'
    tau are computed against the same means; the perfect score's estimate rises with the halves' agreement, reaches
    1 when they agree fully and is left out where it cannot be made."""
    import _rank_taus as rank

    names = ["a", "b", "c", "d"]
    # seed 0 orders the candidates a < b < c < d; seeds 1 and 2, and so the mean of any two seeds, d < c < b < a
    per_seed = {n: {"auto": [0.1 * i, 0.6 - 0.15 * i, 0.9 - 0.2 * i]} for i, n in enumerate(names)}
    truth = {n: {"auto": sum(per_seed[n]["auto"]) / 3} for n in names}
    scores_of = {n: {"logme": -float(i)} for i, n in enumerate(names)}  # the order of seeds 1 and 2
    taus = rank.taus_for(names, scores_of, truth, per_seed, ["auto"], ("logme",))
    # fine-tuned once: seed 0 against the mean of seeds 1-2 is -1, seed 1 or 2 against the others' mean +1
    once = taus["once/auto"]
    assert (once["tau"], once["weighted_tau"], once["candidates"]) == (None, None, 4)
    assert once["tau_rest"] == pytest.approx(1 / 3) and once["weighted_rest"] == pytest.approx(1 / 3)
    logme = taus["logme/auto"]
    assert (logme["tau"], logme["tau_rest"], logme["weighted_rest"]) == pytest.approx((1.0, 1.0, 1.0))
    assert logme["tau_one_seed"] == pytest.approx(1 / 3)
    assert taus["seed-vs-seed/auto"]["tau"] == (-1 - 1 + 1) / 3
    assert rank.oracle_tau(1.0, 6) == 1.0
    assert rank.oracle_tau(0.5, 6) < rank.oracle_tau(0.7, 6) < 1.0
    assert rank.oracle_tau(0.7, 6) > 0.7  # six seeds are more reliable than three
    assert rank.oracle_tau(0.7, 5) is None and rank.oracle_tau(-0.1, 6) is None


def test_the_proxy_orders_by_validation_accuracy_ties_to_the_lower_loss():
    """bench/_rank_proxy.py: the candidates' places by validation accuracy, ties to the lower validation loss (the
    rule `auto` chooses by), and by the loss alone; a proxy recipe never evaluates more than one test example."""
    import _rank_proxy

    rows = {"a": {"val_accuracy": 0.5, "val_loss": 0.9}, "b": {"val_accuracy": 0.5, "val_loss": 0.7},
            "c": {"val_accuracy": 0.4, "val_loss": 0.6}}
    places = _rank_proxy.scores(rows)
    assert [n for n in sorted(rows, key=lambda n: places[n]["proxy-acc"])] == ["c", "a", "b"]
    assert [n for n in sorted(rows, key=lambda n: places[n]["proxy-loss"])] == ["a", "b", "c"]
    recipe = _rank_proxy.recipe("file:x", {"reader": "npz", "limit": {"val": 100}}, "auto", 2, 3, "out")
    assert recipe["data"]["limit"] == {"val": 100, "test": 1}
    assert recipe["train"] == {"epochs": 2, "batch_size": 32, "seed": 3}
