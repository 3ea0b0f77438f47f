"""Transfer Zoo plugin: static word vectors (GloVe, word2vec, fastText) as a text backbone.

The backbone `word-vectors` is an embedding table pooled over a text's tokens (mean by default; `max` or SIF
through `backbone_options: {pooling: ...}`), with one layer group, `embeddings`, below the head: linear-probe and
freeze keep the vectors as they are, finetune and scratch train them. Its weights come from vector files read by
gensim, as `glove:PATH`, `word2vec:PATH` or `fasttext:PATH` references; a checkpoint keeps the vectors in
model.safetensors and the words in vocab.txt (line i names row i). Tokenisation and out-of-vocabulary handling:
see `zoo_wordvectors._encoder`. gensim is imported only when a file is read, which keeps `zoo` listings fast.
"""

from __future__ import annotations

from zoo_core import hookimpl
from zoo_wordvectors._backbone import DEFAULTS, NAME, POOLINGS, WordVectorBackbone, sif_weights, word_vectors_spec
from zoo_wordvectors._encoder import VOCAB_FILE, WordEncoder, read_vocabulary, tokenize, write_vocabulary
from zoo_wordvectors._sources import FastTextSource, GloveSource, Word2VecSource

__version__ = "0.1.0"

__all__ = ["DEFAULTS", "NAME", "POOLINGS", "VOCAB_FILE", "FastTextSource", "GloveSource", "Word2VecSource",
           "WordEncoder", "WordVectorBackbone", "read_vocabulary", "sif_weights", "tokenize", "word_vectors_spec",
           "write_vocabulary"]


@hookimpl
def register_backbones(register):
    register(word_vectors_spec(DEFAULTS))


@hookimpl
def register_sources(register):
    for source in (GloveSource(), Word2VecSource(), FastTextSource()):
        register(source)
