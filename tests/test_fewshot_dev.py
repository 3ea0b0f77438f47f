"""bench/fewshot.py's development target, where text defaults are chosen: it must never hold SST-2's test data."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_the_sst2_dev_target_holds_out_train_sentences_and_nothing_of_the_test_split(tmp_path, shared_data):
    import fewshot

    files = fewshot.sst2_dev_tsv(tmp_path)
    pool = Path(files["train"]).read_text().splitlines()
    held = Path(files["test"]).read_text().splitlines()
    assert pool[0] == held[0] == "label\tsentence"
    assert len(held) == 1001 and all(len(row.split("\t", 1)[1].split()) >= 10 for row in held[1:])
    train = (shared_data / "sst2" / "train.tsv").read_text().splitlines()[1:]
    assert sorted(pool[1:] + held[1:]) == sorted(train)  # a partition of SST-2's train split, nothing else
    test = {row.split("\t", 1)[1] for row in (shared_data / "sst2" / "test.tsv").read_text().splitlines()[1:]}
    assert not test & {row.split("\t", 1)[1] for row in held[1:]}
    (tmp_path / "again").mkdir()  # seeded: the same held-out sentences every run
    assert Path(fewshot.sst2_dev_tsv(tmp_path / "again")["test"]).read_text() == Path(files["test"]).read_text()


def test_the_cedr_sentiment_view_has_the_counts_its_source_gives(tmp_path, shared_data):
    import fewshot

    files = fewshot.cedr_tsv(tmp_path)
    for split, (positive, negative) in {"train": (1508, 2302), "test": (341, 622)}.items():
        labels = [row.split("\t", 1)[0] for row in Path(files[split]).read_text().splitlines()[1:]]
        assert (labels.count("1"), labels.count("0")) == (positive, negative)  # cedr-ru/SOURCE.md


def test_the_cifar10_dev_target_holds_out_train_images_and_nothing_of_the_test_split(tmp_path, shared_data):
    import fewshot
    import numpy as np

    with np.load(fewshot.cifar10_dev_npz(tmp_path)) as dev, \
            np.load(shared_data / "cifar10-subset" / "cifar10_subset.npz") as full:
        assert sorted(dev.files) == ["classes", "test_images", "test_labels", "train_images", "train_labels"]
        assert np.bincount(dev["test_labels"]).tolist() == [100] * 10  # 100 a class held out
        rows = lambda images: {image.tobytes() for image in images}  # noqa: E731
        # a partition of the subset's train split, nothing of its test split
        assert rows(dev["train_images"]) | rows(dev["test_images"]) == rows(full["train_images"])
        assert not rows(dev["train_images"]) & rows(dev["test_images"])
        assert not rows(dev["test_images"]) & rows(full["test_images"])
        held = dev["test_images"]
    (tmp_path / "again").mkdir()  # seeded: the same held-out images every run
    with np.load(fewshot.cifar10_dev_npz(tmp_path / "again")) as again:
        assert (again["test_images"] == held).all()
