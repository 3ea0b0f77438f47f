"""Transfer Zoo plugin: BERT-family text backbones on Hugging Face transformers.

Any `BertModel` configuration works: the named presets below, or whatever config.json a `hf:` reference
carries. transformers is imported only when a model is built, which keeps `zoo` listings fast.
Features are the attention-masked mean of the last hidden states (what sentence-transformers'
MiniLM models were trained for; a robust default for BERT classification heads too). The plugin brings what
the core leaves to backbones: the tokenizer (`TextEncoder`), LoRA's targets (the attention projections) and
the description of each preset's weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError
from safetensors.torch import load_file
from torch import nn

from zoo_core import BackboneSpec, PretrainedWeights, TextPreprocessing, WeightsError, WeightSource, hookimpl
from zoo_core.backbone import Weights

__version__ = "0.1.0"

# The fields that fix a BERT architecture, with BertConfig's defaults; the rest of a config (dropout, ids)
# does not change shapes.
ARCH_DEFAULTS = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)

PRESETS: dict[str, dict[str, Any]] = {
    "bert-base-uncased": dict(
        config=dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072), hub="google-bert/bert-base-uncased",
        description="BERT base, uncased English (Devlin et al. 2018)", dataset="BookCorpus + English Wikipedia"),
    "bert-large-uncased": dict(
        config=dict(vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                    intermediate_size=4096), hub="google-bert/bert-large-uncased",
        description="BERT large, uncased English", dataset="BookCorpus + English Wikipedia"),
    "bert-base-multilingual-cased": dict(
        config=dict(vocab_size=119547, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072), hub="google-bert/bert-base-multilingual-cased",
        description="multilingual BERT base, 104 languages, cased", dataset="Wikipedia in 104 languages"),
    "bert-tiny": dict(
        config=dict(vocab_size=30522, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=512), hub="google/bert_uncased_L-2_H-128_A-2",
        description="BERT tiny, 2 layers, 128 wide (Turc et al. 2019)", dataset="BookCorpus + English Wikipedia"),
    "all-minilm-l6-v2": dict(
        config=dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536), hub="sentence-transformers/all-MiniLM-L6-v2",
        description="MiniLM-L6 sentence encoder (sentence-transformers), English",
        dataset="1B English sentence pairs (sentence-transformers)"),
    "all-minilm-l12-v2": dict(
        config=dict(vocab_size=30522, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=1536), hub="sentence-transformers/all-MiniLM-L12-v2",
        description="MiniLM-L12 sentence encoder (sentence-transformers), English",
        dataset="1B English sentence pairs (sentence-transformers)"),
}


POOLINGS = ("mean", "pooler")
LICENSE = "apache-2.0"  # every preset above is published under Apache-2.0 on the Hub


class TextEncoder:
    """Texts -> tokenizer outputs (input_ids, attention_mask, token_type_ids), padded per batch.

    The tokenizer is, first found: the recipe's `data.tokenizer`, the one in `files` (a checkpoint, or the folder
    beside hf weights), the preprocessing's reference. References are `hf:REPO`, `hf:PATH` or a folder."""

    def __init__(self, pre: TextPreprocessing, *, files: str | Path | None = None, tokenizer: str | None = None,
                 max_length: int | None = None):
        from transformers import AutoTokenizer

        self.max_length = max_length or pre.max_length
        source = tokenizer or (str(files) if files is not None else pre.tokenizer)
        self.tokenizer = AutoTokenizer.from_pretrained(source.removeprefix("hf:"))

    def __call__(self, texts, augment: bool = False, generator=None) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return dict(batch)

    def save(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)


def attention_targets(backbone: nn.Module) -> list[str]:
    """LoRA's default targets on BERT: the attention's query and value projections (Hu et al. 2021)."""
    return [name for name, _ in backbone.named_modules()
            if name.endswith(("attention.self.query", "attention.self.value"))]


class BertBackbone(nn.Module):
    """BertModel returning, per `pooling`, the attention-masked mean of the last hidden states (`mean`), or
    BERT's pooler output, tanh(dense([CLS])) (`pooler`: what BertForSequenceClassification classifies)."""

    def __init__(self, options: Mapping[str, Any]):
        from transformers import BertConfig, BertModel

        super().__init__()
        self.pooling = options.get("pooling", "mean")
        self.bert = BertModel(BertConfig(**_arch(options)), add_pooling_layer=self.pooling == "pooler")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.pooling == "pooler":
            return out.pooler_output
        mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        return (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _groups(m: BertBackbone):
    layers = [(f"layer{i}", layer) for i, layer in enumerate(m.bert.encoder.layer)]
    groups = [("embeddings", m.bert.embeddings), *layers]
    return groups + ([("pooler", m.bert.pooler)] if m.bert.pooler is not None else [])


def _arch(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key: config.get(key, default) for key, default in ARCH_DEFAULTS.items()}


def _options(config: Mapping[str, Any]) -> dict[str, Any]:
    pooling = config.get("pooling", "mean")
    if pooling not in POOLINGS:
        raise WeightsError(f"BERT pooling '{pooling}' is not one of {', '.join(POOLINGS)}")
    return {**_arch(config), "pooling": pooling}


def bert_spec(name: str, options: Mapping[str, Any], tokenizer: str, weights: tuple[Weights, ...] = (),
              description: str = "") -> BackboneSpec:
    options = _options(options)

    def build() -> nn.Module:
        return BertBackbone(options)

    pooler = options["pooling"] == "pooler"
    return BackboneSpec(name=name, family="bert", modality="text", feature_dim=options["hidden_size"],
                        build=build, groups=_groups, preprocessing=TextPreprocessing(tokenizer=tokenizer),
                        weights=weights, encoder=TextEncoder, adapter_targets=attention_targets, options=options,
                        variant=variant_for, description=description,
                        unused_keys=() if pooler else ("bert.pooler.",),
                        hub_export=export_sequence_classification if pooler else None,
                        hub_import=import_sequence_classification if pooler else None)


def variant_for(options: Mapping[str, Any]) -> BackboneSpec:
    """The preset with this architecture (and pooling), else a generic `bert` spec carrying it."""
    options = _options(options)
    for name, preset in PRESETS.items():
        if _arch(preset["config"]) == _arch(options):
            spec = preset_spec(name)
            return spec if options["pooling"] == "mean" else bert_spec(
                name, options, spec.preprocessing.tokenizer, spec.weights, spec.description)
    return bert_spec("bert", options, tokenizer="", description="BERT with a custom configuration")


def preset_spec(name: str) -> BackboneSpec:
    preset = PRESETS[name]
    weights = Weights(reference=f"hf:{preset['hub']}", tag=preset["hub"], license=LICENSE,
                      dataset=preset["dataset"], description=preset["description"], default=True,
                      preprocessing=TextPreprocessing(tokenizer=f"hf:{preset['hub']}"))
    return bert_spec(name, _arch(preset["config"]), tokenizer=f"hf:{preset['hub']}", weights=(weights,),
                     description=preset["description"])


def export_sequence_classification(model, labels: list[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checkpoint as transformers' BertForSequenceClassification: its config and its weight names. A
    standardising head is folded into the classifier (W/std, b - W·mean/std), which computes the same logits."""
    from transformers import BertConfig

    head = model.head
    weight, bias = head.linear.weight.detach(), head.linear.bias.detach()
    if head.standardize:
        weight = weight / head.std
        bias = bias - weight @ head.mean
    config = BertConfig(**_arch(model.spec.options), architectures=["BertForSequenceClassification"],
                        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
                        classifier_dropout=float(head.dropout.p)).to_dict()
    state = {k.removeprefix("backbone."): v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    state.update({"classifier.weight": weight.contiguous(), "classifier.bias": bias.contiguous()})
    return config, state


def import_sequence_classification(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights saved by `export_sequence_classification`, back under the zoo's names (plain head)."""
    out = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            out["head.linear." + key.removeprefix("classifier.")] = value
        else:
            out["backbone." + key] = value
    return out


WEIGHT_PATTERNS = ["config.json", "model.safetensors", "*.txt", "tokenizer*", "special_tokens_map.json",
                   "README.md"]


class HuggingFaceSource(WeightSource):
    name = "hf"
    description = ("a BERT-family model in Hugging Face layout: hf:ORG/NAME[@REVISION] through huggingface_hub "
                   "(its cache, HF_HUB_OFFLINE), or hf:PATH to a local folder")

    def load(self, reference: str) -> PretrainedWeights:
        folder, origin = self._folder(reference)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise WeightsError(f"{origin} has no config.json; is it a Hugging Face model?")
        config = json.loads(config_file.read_text())
        if config.get("model_type") != "bert":
            raise WeightsError(f"{origin} is a '{config.get('model_type')}' model; zoo-transformers supports "
                               "the BERT family (model_type 'bert')")
        weights_file = folder / "model.safetensors"
        if not weights_file.is_file():
            raise WeightsError(f"{origin} has no model.safetensors (pickled .bin weights are not loaded)")
        raw = load_file(weights_file)
        spec = variant_for(_arch(config))
        spec = bert_spec(spec.name, spec.options, tokenizer=str(folder), weights=spec.weights,
                         description=spec.description)  # its tokenizer is the one beside the weights
        return PretrainedWeights(spec=spec, state_dict=_to_backbone_keys(raw), origin=origin, files=folder,
                                 metadata={"hf_config": config})

    @staticmethod
    def _folder(reference: str) -> tuple[Path, str]:
        local = Path(reference).expanduser()
        if local.is_dir():
            return local.resolve(), f"hf:{local.resolve()}"
        repo_id, _, revision = reference.partition("@")
        try:
            path = snapshot_download(repo_id, revision=revision or None, allow_patterns=WEIGHT_PATTERNS)
        except (LocalEntryNotFoundError, RepositoryNotFoundError, HFValidationError, OSError) as exc:
            offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
            raise WeightsError(f"cannot get hf:{reference}{offline}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0]}") from None
        commit = Path(path).name  # snapshot folders are named by commit hash
        return Path(path), f"hf:{repo_id}@{commit}"


def _to_backbone_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map BertModel / BertFor* checkpoint keys to BertBackbone's (`bert.` prefix, no task head; the pooler is
    kept for `pooling: pooler` and ignored otherwise)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("bert.")
        if key.startswith(("cls.", "classifier.")) or key.endswith("position_ids"):
            continue
        out[f"bert.{key}"] = value
    return out


@hookimpl
def register_backbones(register):
    for name in PRESETS:
        register(preset_spec(name))
    register(bert_spec("bert", dict(ARCH_DEFAULTS), tokenizer="hf:google-bert/bert-base-uncased",
                       description="BERT with any BertModel configuration (see variant options)"))


@hookimpl
def register_sources(register):
    register(HuggingFaceSource())
