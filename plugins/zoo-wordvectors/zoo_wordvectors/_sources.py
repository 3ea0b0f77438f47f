"""Weight sources `glove:PATH`, `word2vec:PATH` and `fasttext:PATH`: vector files read by gensim's KeyedVectors.

- glove: GloVe's text format, one `word v1 ... vd` line per word and no header (glove.6B.300d.txt).
- word2vec: word2vec's binary format (GoogleNews-vectors-negative300.bin[.gz]) or its text format, both with the
  `COUNT DIM` header line; which of the two a file is, is read from its first vector.
- fasttext: fastText's `.vec` text files (word2vec's text format); its `.bin` models are refused.

gensim reads `.gz` and `.bz2` files as they are. `PATH?limit=N` keeps the N first (most frequent) words, which bounds
the memory of large files (GoogleNews has 3 million words: 3.6 GB of vectors).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import torch

from zoo_core import PretrainedWeights, WeightsError, WeightSource
from zoo_wordvectors._backbone import SPECIALS, word_vectors_spec
from zoo_wordvectors._encoder import remember

LIMIT = re.compile(r"^(?P<path>.+)\?limit=(?P<limit>\d+)$")
FASTTEXT_MAGIC = 793712314  # the first int32 of a fastText .bin model


def parse(reference: str) -> tuple[Path, int | None]:
    """`PATH` or `PATH?limit=N` (a file whose name really ends in `?limit=N` is taken as named)."""
    match = LIMIT.match(reference)
    if match and not Path(reference).expanduser().exists():
        limit = int(match["limit"])
        if limit < 1:
            raise WeightsError(f"limit must be at least 1 in '{reference}'")
        return Path(match["path"]).expanduser().resolve(), limit
    return Path(reference).expanduser().resolve(), None


def _head(path: Path, size: int = 1 << 16) -> bytes:
    from gensim import utils

    with utils.open(str(path), "rb") as handle:  # smart_open: .gz and .bz2 are decompressed
        return handle.read(size)


def _is_text_vector(line: bytes, dim: int | None) -> bool:
    """Whether `line` reads as `word v1 ... vd` (d = `dim` when known)."""
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
        [float(x) for x in parts[1:]]
    except (UnicodeDecodeError, ValueError):
        return False
    return len(parts) >= 2 and (dim is None or len(parts) == dim + 1)


def _header(head: bytes) -> tuple[int, int] | None:
    """The `COUNT DIM` header of word2vec's formats, if the file starts with one."""
    first = head.split(b"\n", 1)[0].split()
    if len(first) == 2 and all(part.isdigit() for part in first):
        return int(first[0]), int(first[1])
    return None


class VectorFileSource(WeightSource):
    """A vector file read through gensim's KeyedVectors; subclasses say which format and how to check it."""

    format_name: str

    def load(self, reference: str) -> PretrainedWeights:
        path, limit = parse(reference)
        shown = f"{self.name}:{reference}"
        if not path.is_file():
            raise WeightsError(f"{shown}: there is no file '{path}'" + (" (it is a folder)" if path.is_dir() else ""))
        try:
            head = _head(path)
        except OSError as exc:
            raise WeightsError(f"{shown}: cannot read '{path}': {exc}") from None
        if not head.strip():
            raise WeightsError(f"{shown}: '{path}' is empty")
        binary, no_header = self.check(head, shown)
        from gensim.models import KeyedVectors

        try:
            kv = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header, limit=limit)
        except Exception as exc:  # gensim raises many kinds on a malformed file; one message names the file
            raise WeightsError(f"{shown}: '{path}' is not a valid {self.format_name} file: "
                               f"{type(exc).__name__}: {exc}") from None
        words = [*SPECIALS, *kv.index_to_key]
        vectors = torch.cat([torch.zeros(len(SPECIALS), kv.vector_size), torch.from_numpy(kv.vectors).float()])
        origin = f"{self.name}:{path}" + (f"?limit={limit}" if limit else "")
        remember(origin, words)
        spec = word_vectors_spec({"vocab_size": len(words), "dim": kv.vector_size}, vocabulary=origin)
        return PretrainedWeights(spec=spec, state_dict={"embedding.weight": vectors}, origin=origin,
                                 preprocessing=spec.preprocessing,
                                 metadata={"format": self.format_name, "words": len(kv), "dim": kv.vector_size,
                                           "file": str(path), "file_size": path.stat().st_size})

    def check(self, head: bytes, shown: str) -> tuple[bool, bool]:
        """(binary, no_header) for gensim, after checking that the file's start fits the format."""
        raise NotImplementedError


class GloveSource(VectorFileSource):
    name = "glove"
    format_name = "GloVe text (no header)"
    description = "GloVe vectors in its text format (no header): glove:PATH[?limit=N], read by gensim"

    def check(self, head: bytes, shown: str) -> tuple[bool, bool]:
        if _header(head):
            raise WeightsError(f"{shown}: the file starts with a 'COUNT DIM' header, so it is in word2vec's text "
                               "format (fastText's .vec too): use word2vec:PATH or fasttext:PATH")
        if not _is_text_vector(head.split(b"\n", 1)[0], None):
            raise WeightsError(f"{shown}: the first line is not 'word v1 ... vd'; is this a GloVe text file?")
        return False, True


class Word2VecSource(VectorFileSource):
    name = "word2vec"
    format_name = "word2vec (binary or text)"
    description = "word2vec vectors, binary or text format (header 'COUNT DIM'): word2vec:PATH[?limit=N], by gensim"

    def check(self, head: bytes, shown: str) -> tuple[bool, bool]:
        header = _header(head)
        if header is None:
            raise WeightsError(f"{shown}: no 'COUNT DIM' header line, which word2vec's formats start with "
                               "(GloVe's text files have none: use glove:PATH)")
        first_vector = head.split(b"\n", 1)[1].split(b"\n", 1)[0] if b"\n" in head else b""
        return not _is_text_vector(first_vector, header[1]), False


class FastTextSource(VectorFileSource):
    name = "fasttext"
    format_name = "fastText .vec (text)"
    description = "fastText word vectors from a .vec file (text, header 'COUNT DIM'): fasttext:PATH[?limit=N]"

    def check(self, head: bytes, shown: str) -> tuple[bool, bool]:
        if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == FASTTEXT_MAGIC:
            raise WeightsError(f"{shown}: this is a fastText .bin model; give its .vec file (the word vectors "
                               "as text), which fastText writes beside it")
        if _header(head) is None:
            raise WeightsError(f"{shown}: no 'COUNT DIM' header line, which .vec files start with")
        return False, False
