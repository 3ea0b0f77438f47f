"""The word-vector backbone: an embedding table (one row per word of the vectors' file) pooled over a text's tokens.

Rows 0 and 1 are the padding and the out-of-vocabulary (UNK) rows; the file's words follow in the file's order, which
for GloVe, word2vec and fastText files is by falling corpus frequency (SIF pooling relies on it). Everything that fixes
the module's shape or behaviour is in its options, saved in a checkpoint's config.json.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import nn

from zoo_core import BackboneSpec, TextPreprocessing, WeightsError

PAD, UNK = 0, 1
SPECIALS = ("<pad>", "<unk>")  # the names of rows 0 and 1 in a vocabulary file
POOLINGS = ("mean", "max", "sif")
OOV = ("unk", "skip")
MAX_LENGTH = 256  # tokens kept per text (the rest are dropped)

NAME = "word-vectors"
DEFAULTS: dict[str, Any] = dict(vocab_size=1000, dim=50, pooling="mean", oov="unk", sif_a=1e-3)
"""The registered spec's options; vectors loaded from a file bring their own `vocab_size` and `dim`."""


def normalize_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled in, checked (a misspelt key or value is refused, naming the right ones)."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise WeightsError(f"word-vectors has no option {', '.join(map(repr, unknown))}; its options are "
                           f"{', '.join(DEFAULTS)} (pooling: {'|'.join(POOLINGS)}, oov: {'|'.join(OOV)})")
    out = {**DEFAULTS, **options}
    if out["pooling"] not in POOLINGS:
        raise WeightsError(f"word-vectors pooling '{out['pooling']}' is not one of {', '.join(POOLINGS)}")
    if out["oov"] not in OOV:
        raise WeightsError(f"word-vectors oov '{out['oov']}' is not one of {', '.join(OOV)}")
    if int(out["vocab_size"]) < len(SPECIALS) or int(out["dim"]) < 1:
        raise WeightsError(f"word-vectors needs vocab_size >= {len(SPECIALS)} and dim >= 1, got "
                           f"{out['vocab_size']} and {out['dim']}")
    if not float(out["sif_a"]) > 0:
        raise WeightsError(f"word-vectors sif_a must be positive, got {out['sif_a']}")
    return {"vocab_size": int(out["vocab_size"]), "dim": int(out["dim"]), "pooling": out["pooling"],
            "oov": out["oov"], "sif_a": float(out["sif_a"])}


def sif_weights(vocab_size: int, a: float) -> torch.Tensor:
    """Smooth inverse frequency a / (a + p(w)) per row (Arora, Liang & Ma 2017). The files carry no counts, so p(w)
    is Zipf's law on the word's rank in the file: p = 1 / ((rank + 1) H_n), H_n the harmonic number of the n words.
    UNK is weighted as the rarest word. (SIF's second step, removing the common component, is a fixed linear map:
    the linear head on top can learn it, so it is left out.)"""
    words = vocab_size - len(SPECIALS)
    ranks = torch.arange(1, words + 1, dtype=torch.float64)
    p = 1.0 / (ranks * ranks.reciprocal().sum())
    weights = a / (a + p)
    rarest = weights[-1:] if words else torch.ones(1, dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), rarest, weights]).float()


class WordVectorBackbone(nn.Module):
    """Token ids -> the pooled vectors of the text's tokens ([batch, dim]).

    `mean`: the average of the tokens' vectors; `max`: the element-wise maximum; `sif`: the SIF-weighted average
    (frequent words count less). Padding never counts; a text with no token gives zeros."""

    def __init__(self, options: Mapping[str, Any]):
        super().__init__()
        self.pooling = options["pooling"]
        self.embedding = nn.Embedding(options["vocab_size"], options["dim"], padding_idx=PAD)
        if self.pooling == "sif":  # computed from the options, so not saved (persistent=False)
            self.register_buffer("token_weights", sif_weights(options["vocab_size"], options["sif_a"]),
                                 persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = input_ids != PAD
        vectors = self.embedding(input_ids)
        present = attention_mask.unsqueeze(-1).to(torch.bool)
        count = present.sum(1).clamp(min=1).to(vectors.dtype)
        if self.pooling == "max":
            pooled = vectors.masked_fill(~present, -math.inf).max(1).values
            return pooled.masked_fill(~present.any(1), 0.0)
        weights = present.to(vectors.dtype)
        if self.pooling == "sif":
            weights = weights * self.token_weights[input_ids].unsqueeze(-1).to(vectors.dtype)
        return (vectors * weights).sum(1) / count


def groups(backbone: WordVectorBackbone):
    return [("embeddings", backbone.embedding)]


def adapter_targets(backbone: WordVectorBackbone) -> list[str]:
    """LoRA adapts the embedding table itself (peft's low-rank update of an nn.Embedding)."""
    return ["embedding"]


def word_vectors_spec(options: Mapping[str, Any], vocabulary: str = "") -> BackboneSpec:
    """The spec of a word-vector table with these options; `vocabulary` is the weight reference whose words it
    holds (the encoder's fallback when no vocabulary file is beside the weights)."""
    from zoo_wordvectors._encoder import WordEncoder

    options = normalize_options(options)

    def build() -> nn.Module:
        return WordVectorBackbone(options)

    return BackboneSpec(
        name=NAME, family="word-vectors", modality="text", feature_dim=options["dim"], build=build, groups=groups,
        preprocessing=TextPreprocessing(tokenizer=vocabulary, max_length=MAX_LENGTH),
        encoder=partial(WordEncoder, options=options), adapter_targets=adapter_targets, options=options,
        variant=lambda new: word_vectors_spec(new, vocabulary),
        description="static word vectors (GloVe, word2vec, fastText .vec) pooled over a text's tokens: mean, max "
                    "or SIF; weights as glove:PATH, word2vec:PATH or fasttext:PATH")
