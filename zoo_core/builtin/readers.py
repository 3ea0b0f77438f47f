"""Built-in dataset readers: image folders, .npz arrays, IDX files (MNIST) and CSV/TSV text."""

from __future__ import annotations

import csv
import gzip
import zipfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from zoo_core.data import DataError, DataSet, Reader, Split, encode_labels, existing_file
from zoo_core.hookspecs import hookimpl

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ImageFolder(Reader):
    """Images in one subfolder per class (`root/SPLIT/CLASS/*.png`, or `root/CLASS/*.png` for one split)."""

    name = "imagefolder"
    modality = "image"
    path: str = Field(description="root folder")
    splits: list[str] | None = Field(None, description="split subfolders (default: train/val/test that exist)")

    def read(self) -> DataSet:
        root = Path(self.path).expanduser()
        if not root.is_dir():
            raise DataError(f"image folder '{root}' does not exist")
        names = self.splits or [s for s in ("train", "val", "test") if (root / s).is_dir()]
        folders = {s: root / s for s in names} if names else {"train": root}
        for split, folder in folders.items():
            if not folder.is_dir():
                raise DataError(f"split '{split}' has no folder {folder}")
        classes = sorted({d.name for f in folders.values() for d in f.iterdir() if d.is_dir()})
        if not classes:
            raise DataError(f"'{root}' has no class subfolders")
        splits = {}
        for split, folder in folders.items():
            paths, labels = [], []
            for label, cls in enumerate(classes):
                files = sorted(p for p in (folder / cls).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
                paths += files
                labels += [label] * len(files)
            splits[split] = Split(paths, np.array(labels))
        return DataSet("image", classes, splits)


class Npz(Reader):
    """Arrays in a NumPy .npz file, images and labels per split (e.g. MedMNIST's `train_images`/`train_labels`)."""

    name = "npz"
    modality = "image"
    path: str = Field(description=".npz file")
    images: str = Field("{split}_images", description="array name of a split's images")
    labels: str = Field("{split}_labels", description="array name of a split's labels")
    splits: list[str] = Field(["train", "val", "test"], description="splits to read where present")
    classes: list[str] | None = Field(None, description="class names, in label order")

    def read(self) -> DataSet:
        path = existing_file(self.path, "npz file")
        try:
            archive = np.load(path, allow_pickle=False)
            arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"'{path}' is not a readable .npz file: {exc}") from None
        splits = {}
        for split in self.splits:
            image_key, label_key = self.images.format(split=split), self.labels.format(split=split)
            if image_key in arrays and label_key in arrays:
                splits[split] = Split(arrays[image_key], arrays[label_key])
        if not splits:
            raise DataError(f"'{path}' has no arrays named like '{self.images}'/'{self.labels}' for splits "
                            f"{self.splits}; it holds {sorted(arrays)}")
        classes = self.classes
        if classes is None and "classes" in arrays:
            classes = [str(c) for c in arrays["classes"]]
        if classes is None:
            top = max(int(s.labels.max(initial=0)) for s in splits.values())
            classes = [str(i) for i in range(top + 1)]
        return DataSet("image", classes, splits)


class IdxFiles(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: str
    labels: str


class Idx(Reader):
    """MNIST's IDX format (gzipped or not): an images file and a labels file per split."""

    name = "idx"
    modality = "image"
    splits: dict[str, IdxFiles] = Field(description="split -> {images: FILE, labels: FILE}")
    classes: list[str] | None = Field(None, description="class names, in label order")

    def read(self) -> DataSet:
        splits = {name: Split(read_idx(files.images), read_idx(files.labels))
                  for name, files in self.splits.items()}
        top = max(int(s.labels.max(initial=0)) for s in splits.values())
        return DataSet("image", self.classes or [str(i) for i in range(top + 1)], splits)


IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file: magic (0, 0, type, ndim), ndim big-endian sizes, then the data."""
    path = existing_file(path, "IDX file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"'{path}' is a corrupt gzip file: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataError(f"'{path}' is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DataError(f"'{path}' is truncated or corrupt: header says {dims} ({expected} bytes of data), "
                        f"file has {len(raw) - offset}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)


class Table(Reader):
    """CSV/TSV text: one file per split, text and label columns by name or by number (0-based)."""

    name = "csv"
    modality = "text"
    files: dict[str, str] = Field(description="split -> file")
    text: str | int = Field(1, description="text column: header name or 0-based number")
    label: str | int = Field(0, description="label column: header name or 0-based number")
    delimiter: str | None = Field(None, description="default: tab for .tsv, comma otherwise")
    header: bool = Field(True, description="whether the first line names the columns")
    quoting: bool | None = Field(None, description="honour quote characters (default: yes for CSV, no for TSV)")
    classes: list[str] | None = Field(None, description="class names, in label order")

    def read(self) -> DataSet:
        raw: dict[str, tuple[list[str], list[str]]] = {}
        for split, file in self.files.items():
            raw[split] = self._read_file(existing_file(file, f"{split} file"))
        all_labels = [label for _, labels in raw.values() for label in labels]
        encoded, classes = encode_labels(all_labels, self.classes)
        splits, start = {}, 0
        for split, (texts, labels) in raw.items():
            splits[split] = Split(texts, encoded[start:start + len(labels)])
            start += len(labels)
        return DataSet("text", classes, splits)

    def _read_file(self, path: Path) -> tuple[list[str], list[str]]:
        tsv = path.suffix.lower() in (".tsv", ".tab")
        delimiter = self.delimiter or ("\t" if tsv else ",")
        quoting = self.quoting if self.quoting is not None else not tsv
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting
                                   else csv.QUOTE_NONE))
        header = rows.pop(0) if self.header and rows else None
        text_col, label_col = self._column(self.text, header, path), self._column(self.label, header, path)
        texts, labels = [], []
        for number, row in enumerate(rows, start=2 if header else 1):
            if not row:
                continue
            if max(text_col, label_col) >= len(row):
                raise DataError(f"{path}:{number}: expected at least {max(text_col, label_col) + 1} columns, "
                                f"found {len(row)}")
            texts.append(row[text_col])
            labels.append(row[label_col])
        return texts, labels

    @staticmethod
    def _column(column: str | int, header: list[str] | None, path: Path) -> int:
        if isinstance(column, int):
            return column
        if header is None or column not in header:
            raise DataError(f"'{path}' has no column named '{column}' (columns: {header})")
        return header.index(column)


@hookimpl
def register_readers(register):
    for reader in (ImageFolder, Npz, Idx, Table):
        register(reader)
