"""Texts -> token ids over the vectors' vocabulary, and the vocabulary file a checkpoint keeps (`vocab.txt`).

Tokenisation: words (letters and digits, with inner hyphens and apostrophes: `well-made`, `don't`), clitics written
apart as the Penn treebank and SST do (`'s`, `'re`), and each other non-space character alone (punctuation). A token
is looked up as written, then lowercased, so an uncased vocabulary (GloVe 6B) and a cased one (word2vec GoogleNews)
both work. Out of vocabulary: the UNK row (`oov: unk`, the default: zero at first, trained with the embeddings), or
dropped (`oov: skip`). At most `max_length` tokens of a text are kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from zoo_core import TextPreprocessing, WeightsError, ZooError
from zoo_wordvectors._backbone import PAD, SPECIALS, UNK

VOCAB_FILE = "vocab.txt"
TOKEN = re.compile(r"'\w+|\w+(?:[-']\w+)*|[^\w\s]")

# words of vectors loaded in this process, by the reference their spec's preprocessing names (see `vocabulary`)
_LOADED: dict[str, list[str]] = {}


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text)


def remember(reference: str, words: list[str]) -> None:
    _LOADED[reference] = words


def write_vocabulary(words: Sequence[str], folder: Path) -> Path:
    """One word a line, line i naming embedding row i (rows 0 and 1: `<pad>`, `<unk>`), UTF-8, `\\n`-separated."""
    bad = next((w for w in words if "\n" in w), None)
    if bad is not None:
        raise WeightsError(f"the word {bad!r} contains a line break and cannot be written to {VOCAB_FILE}")
    path = Path(folder) / VOCAB_FILE
    path.write_bytes(("\n".join(words) + "\n").encode("utf-8"))
    return path


def read_vocabulary(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8")  # not read_text: a word may hold a lone '\r'
    words = text.removesuffix("\n").split("\n")
    if tuple(words[:len(SPECIALS)]) != SPECIALS:
        raise WeightsError(f"'{path}' is not a word-vectors vocabulary: its first lines must be "
                           f"{' and '.join(SPECIALS)}")
    return words


def vocabulary(files: str | Path | None, reference: str) -> list[str]:
    """The words, row by row: `vocab.txt` in `files` (a checkpoint), else those of the vectors `reference` names
    (remembered when this process loaded them, else read again through their weight source)."""
    if files is not None and (Path(files) / VOCAB_FILE).is_file():
        return read_vocabulary(Path(files) / VOCAB_FILE)
    if not reference:
        raise WeightsError("backbone 'word-vectors' has no vocabulary of its own: take vectors as the base "
                           "(glove:PATH, word2vec:PATH or fasttext:PATH); for random vectors over their words, "
                           "keep that base with strategy: scratch")
    if reference not in _LOADED:
        from zoo_core import load_weights

        load_weights(reference)  # the source remembers the words it read
    return _LOADED[reference]


class WordEncoder:
    """Texts -> `input_ids` and `attention_mask`, padded to the batch's longest text (see the module's notes)."""

    def __init__(self, pre: TextPreprocessing, *, options: Mapping[str, Any], files: str | Path | None = None,
                 tokenizer: str | None = None, max_length: int | None = None):
        if tokenizer is not None:
            raise ZooError("data.tokenizer cannot be set for word-vectors: the vocabulary is the one of the "
                           "vectors (the base), row for row")
        self.words = vocabulary(files, pre.tokenizer)
        if len(self.words) != options["vocab_size"]:
            raise WeightsError(f"the vocabulary has {len(self.words)} rows but the vectors have "
                               f"{options['vocab_size']}; they must come from the same file or checkpoint")
        self.index = {word: i for i, word in enumerate(self.words) if i >= len(SPECIALS)}
        self.skip_oov = options["oov"] == "skip"
        self.max_length = max_length or pre.max_length

    def ids(self, text: str) -> list[int]:
        out = []
        for token in tokenize(text):
            row = self.index.get(token)
            if row is None:
                row = self.index.get(token.lower())
            if row is None:
                if self.skip_oov:
                    continue
                row = UNK
            out.append(row)
            if len(out) == self.max_length:
                break
        return out

    def __call__(self, texts, augment: bool = False, generator=None) -> dict[str, torch.Tensor]:
        rows = [self.ids(str(text)) for text in texts]
        width = max([1, *map(len, rows)])
        ids = torch.full((len(rows), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, :len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def save(self, folder: Path) -> None:
        write_vocabulary(self.words, folder)
