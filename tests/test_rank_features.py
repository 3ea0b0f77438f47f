"""`zoo rank`'s features: read and encoded once per ranking, equal to what the engine computes candidate by
candidate; the pieces that made them cheaper (no random initialisation drawn, scikit-learn-free Ledoit-Wolf)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo_core.rank_features import FeatureCache
from zoo_core.transferability import ledoit_wolf


def engine_features(cache: FeatureCache, base: str) -> np.ndarray:
    """What `zoo rank` computed before: a whole training engine per candidate, its features on the train split."""
    from zoo_core.train import Engine

    engine = Engine(cache.recipe(base), progress=False)
    return engine.features(engine.data.train).numpy().astype(np.float64)


def test_candidates_with_one_preprocessing_read_and_encode_the_data_once(tmp_path, tiny_recipe, monkeypatch):
    import zoo_core.pipeline
    import zoo_core.train

    trained = tiny_recipe.train(tmp_path, train={"epochs": 1}).checkpoint
    data = tiny_recipe(tmp_path / "unused")["data"]
    candidates = ["scratch:tinynet", f"file:{trained}"]
    reads, encodes = [], []
    real_read, real_call = zoo_core.train.read_data, zoo_core.pipeline.ImageEncoder.__call__
    monkeypatch.setattr(zoo_core.train, "read_data", lambda recipe: reads.append(1) or real_read(recipe))
    monkeypatch.setattr(zoo_core.pipeline.ImageEncoder, "__call__",
                        lambda self, inputs, **kw: encodes.append(len(inputs)) or real_call(self, inputs, **kw))

    shared = FeatureCache(data, seed=0, batch_size=4)  # 16 images: 4 batches
    embedded = [shared.embed(c) for c in candidates]
    assert len(reads) == 1 and sum(encodes) == 16  # both candidates: one read, each image encoded once
    reads.clear(), encodes.clear()
    unshared = FeatureCache(data, seed=0, batch_size=4, share=False)
    alone = [unshared.embed(c).features for c in candidates]
    assert len(reads) == 2 and sum(encodes) == 32
    for e, features, candidate in zip(embedded, alone, candidates, strict=True):
        assert e.features.shape == (16, 16) and not np.allclose(e.features, 0)
        assert np.array_equal(e.features, features)  # bit for bit
        assert np.array_equal(e.features, engine_features(shared, candidate))
    assert not np.allclose(embedded[0].features, embedded[1].features)  # two different models
    assert set(embedded[0].phases) >= {"weights", "data", "model", "encode", "forward"}


def test_encoded_images_stay_within_their_memory_cap(tmp_path, tiny_recipe, monkeypatch):
    import zoo_core.rank_features as rank_features

    data = tiny_recipe(tmp_path)["data"]
    monkeypatch.setattr(rank_features, "ENCODED_CACHE_BYTES", 16 * 3 * 32 * 32 * 4)  # one split's encoded images
    cache = FeatureCache(data, seed=0)
    tinynet = cache.embed("scratch:tinynet")  # mean and std 0.5
    resnet = cache.embed("scratch:resnet18")  # ImageNet's mean and std: the first preprocessing's images go
    [kept] = cache._encoded
    assert kept.mean == (0.485, 0.456, 0.406)
    unshared = FeatureCache(data, seed=0, share=False)
    assert np.array_equal(tinynet.features, unshared.embed("scratch:tinynet").features)
    assert np.array_equal(resnet.features, unshared.embed("scratch:resnet18").features)


def test_texts_batched_by_length_give_the_engines_features(tmp_path, tiny_tokenizer):
    from tests.test_strategy_matrix import text_data

    data = {**text_data(tiny_tokenizer), "labels_per_class": 12}  # 24 sentences: batches of 16 and 8
    cache = FeatureCache(data, seed=0)
    embedded = cache.embed("scratch:bert-tiny")
    expected = engine_features(cache, "scratch:bert-tiny")  # one padded batch, in the split's order
    assert embedded.features.shape == (24, 128)
    # less padding changes float32 sums in their last bits only
    np.testing.assert_allclose(embedded.features, expected, rtol=1e-4, atol=1e-5)


def test_rank_records_where_each_candidates_seconds_went(tmp_path, tiny_recipe):
    from zoo_core.transferability import rank

    [ranked] = rank(tiny_recipe(tmp_path)["data"], ["scratch:tinynet"])
    assert ranked.error is None
    assert set(ranked.phases) >= {"weights", "data", "model", "forward", "scores"}
    assert all(p["wall"] >= 0 and p["cpu"] >= 0 for p in ranked.phases.values())
    assert sum(p["wall"] for p in ranked.phases.values()) <= ranked.seconds


def test_a_function_kept_while_initialisation_was_skipped_initialises_afterwards():
    """A module imported inside `SkipInitialisation` keeps the functions it finds (transformers' `initialization`
    does): they must skip only inside the block, not for the rest of the process."""
    from zoo_core.checkpoint import SkipInitialisation

    with SkipInitialisation():
        kept = torch.nn.init.normal_
        inside = kept(torch.zeros(1000))
    assert torch.equal(inside, torch.zeros(1000))
    torch.manual_seed(0)
    after = kept(torch.zeros(1000))
    torch.manual_seed(0)
    assert torch.equal(after, torch.empty(1000).normal_())  # the same draw as torch's own


@pytest.mark.parametrize("n,d", [(50, 1), (30, 200), (200, 10), (20, 1100)])  # 1100: scikit-learn's blocks
def test_ledoit_wolf_is_scikit_learns(n, d):
    from sklearn.covariance import ledoit_wolf as reference

    rng = np.random.default_rng(d)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + rng.normal(size=d)
    x = x - x.mean(0)
    np.testing.assert_allclose(ledoit_wolf(x), reference(x)[0], rtol=1e-10, atol=1e-13)
