from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

import zoo_core
from zoo_core.errors import DataError


def reader(name, **args):
    return zoo_core.get_reader(name)(**args)


def test_npz_reads_pneumoniamnist_splits(shared_data):
    data = reader("npz", path=str(shared_data / "pneumoniamnist/pneumoniamnist.npz"),
                  classes=["normal", "pneumonia"]).read()
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 2428, "val": 270, "test": 468}
    assert data.splits["train"].inputs.shape == (2428, 28, 28)
    assert data.splits["train"].labels.shape == (2428,)  # (N, 1) labels are flattened
    assert data.classes == ["normal", "pneumonia"]


def test_npz_takes_class_names_from_the_file(shared_data):
    data = reader("npz", path=str(shared_data / "cifar10-subset/cifar10_subset.npz")).read()
    assert set(data.splits) == {"train", "test"}
    assert data.classes[0] == "airplane" and len(data.classes) == 10


def test_npz_missing_arrays_are_named(shared_data):
    with pytest.raises(DataError, match="it holds .*train_images"):
        reader("npz", path=str(shared_data / "pneumoniamnist/pneumoniamnist.npz"), images="{split}_x").read()


def test_idx_reads_mnist_gzipped(shared_data, tmp_path):
    files = {"images": str(shared_data / "mnist-test/t10k-images-idx3-ubyte.gz"),
             "labels": str(shared_data / "mnist-test/t10k-labels-idx1-ubyte.gz")}
    data = reader("idx", splits={"train": files}).read()
    split = data.splits["train"]
    assert split.inputs.shape == (10000, 28, 28) and split.inputs.dtype == np.uint8
    assert data.classes == [str(i) for i in range(10)]
    assert np.bincount(split.labels).min() == 892
    # the same files uncompressed read the same
    raw = tmp_path / "labels.idx"
    raw.write_bytes(gzip.decompress((shared_data / "mnist-test/t10k-labels-idx1-ubyte.gz").read_bytes()))
    again = reader("idx", splits={"train": {**files, "labels": str(raw)}}).read()
    assert (again.splits["train"].labels == split.labels).all()


def test_idx_truncated_file_is_refused(shared_data, tmp_path):
    raw = gzip.decompress((shared_data / "mnist-test/t10k-labels-idx1-ubyte.gz").read_bytes())
    bad = tmp_path / "labels.idx"
    bad.write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated or corrupt"):
        zoo_core.get_reader("idx")(splits={"x": {"images": str(bad), "labels": str(bad)}}).read()
    bad.write_bytes(b"not idx at all")
    with pytest.raises(DataError, match="bad magic"):
        zoo_core.get_reader("idx")(splits={"x": {"images": str(bad), "labels": str(bad)}}).read()


def test_csv_reads_sst2_with_numbered_columns(shared_data):
    data = reader("csv", files={"val": str(shared_data / "sst2/dev.tsv"), "test": str(shared_data / "sst2/test.tsv")},
                  text=1, label=0, classes=["negative", "positive"]).read()
    assert len(data.splits["val"]) == 872 and len(data.splits["test"]) == 1821
    assert np.bincount(data.splits["val"].labels).tolist() == [428, 444]
    assert data.splits["val"].inputs[0] == "one long string of cliches ."
    assert data.modality == "text"


def test_csv_named_columns_and_string_labels(tmp_path):
    f = tmp_path / "reviews.csv"
    f.write_text('text,label\n"great, really",pos\nawful,neg\nfine,pos\n')
    data = reader("csv", files={"train": str(f)}, text="text", label="label").read()
    assert data.classes == ["neg", "pos"]
    assert data.splits["train"].inputs == ["great, really", "awful", "fine"]
    assert data.splits["train"].labels.tolist() == [1, 0, 1]
    with pytest.raises(DataError, match="no column named 'sentence'"):
        reader("csv", files={"train": str(f)}, text="sentence", label="label").read()


def test_image_folder(tmp_path):
    for split in ("train", "test"):
        for cls, colour in (("cat", 10), ("dog", 200)):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (colour, i, 0)).save(folder / f"{i}.png")
    data = reader("imagefolder", path=str(tmp_path)).read()
    assert data.classes == ["cat", "dog"]
    assert len(data.splits["train"]) == 6 and data.splits["test"].labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(data.splits["train"].fingerprint()) == 64


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        reader("npz", path=str(tmp_path / "nope.npz")).read()
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="not a readable .npz"):
        reader("npz", path=str(corrupt)).read()


def test_fingerprint_changes_with_the_data(shared_data):
    data = reader("npz", path=str(shared_data / "pneumoniamnist/pneumoniamnist.npz")).read()
    split = data.splits["val"]
    assert split.fingerprint() == split.subset(range(len(split))).fingerprint()
    assert split.fingerprint() != split.subset(range(len(split) - 1)).fingerprint()
