"""Built-in adaptation strategies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr
from safetensors.torch import save_file
from torch import nn

from zoo_core.errors import ZooError
from zoo_core.hookspecs import hookimpl
from zoo_core.strategy import NORM_TYPES, Strategy, decayed, resolve_group


class LinearProbe(Strategy):
    """Feature extraction: the backbone stays frozen and only the new head trains, on cached features."""

    name = "linear-probe"
    frozen_backbone = True
    feature_groups: list[str] | None = Field(
        None, description="pool and concatenate these layer groups' outputs instead of the final features "
                          "(mid-level features often transfer better to a distant domain)")
    standardize: bool = Field(True, description="standardise each feature with the training set's statistics")
    solver: Literal["lbfgs", "sgd"] = Field(
        "lbfgs", description="lbfgs: fit the head to convergence on the cached features (logistic regression, "
                             "train.lr and epochs unused); sgd: the epoch loop at train.lr, the only solver "
                             "of linear-probe recipes written before solver existed")
    C: float | None = Field(None, gt=0, description="lbfgs: inverse L2 strength, as scikit-learn's "
                                                    "LogisticRegression (default: chosen by cross-validation)")
    cv_folds: int = Field(5, ge=2, description="lbfgs: stratified folds of the training split that choose C")
    # the field default is what recipes written before defaults version 3 ran; `recommended` gives the current one
    cv_score: Literal["accuracy", "log_loss"] = Field(
        "log_loss", description="lbfgs: what chooses C: held-out accuracy, ties to the stronger penalty (scikit-"
                                "learn's LogisticRegressionCV's rule; the default), or held-out log-loss, the "
                                "strongest penalty within one standard error of the best (recipes before defaults 3)")

    def check_groups(self, groups):
        for name in self.feature_groups or ():
            if name == groups[-1]:
                raise ZooError("linear-probe: feature_groups cannot include the head")
            resolve_group(name, groups)

    def lr_scales(self, groups, epoch):
        return [0.0] * (len(groups) - 1) + [1.0]

    def head_options(self):
        return {"feature_groups": self.feature_groups, "standardize": self.standardize}

    @classmethod
    def recommended(cls, modality):
        # held-out log-loss chose so strong a penalty on ten weakly separated classes (CIFAR-10 from the MNIST
        # chain) that the probe lost to the plain scikit-learn one on the same features: README "Defaults"
        return {"strategy": {"cv_score": "accuracy"}}

    def head_fit(self):
        return {"C": self.C, "folds": self.cv_folds, "score": self.cv_score} if self.solver == "lbfgs" else None


class Freeze(Strategy):
    """Groups before `trainable_from` stay frozen (BatchNorm there in eval mode); the rest and the head train."""

    name = "freeze"
    trainable_from: str | int = Field(
        -2, description="first trainable layer group, by name or position (default: the top backbone group)")

    def check_groups(self, groups):
        resolve_group(self.trainable_from, groups)

    def lr_scales(self, groups, epoch):
        start = resolve_group(self.trainable_from, groups)
        return [1.0 if i >= start else 0.0 for i in range(len(groups))]


class Finetune(Strategy):
    """Everything trains at a low learning rate, with warm-up and optional layer-wise learning-rate decay."""

    name = "finetune"
    # field defaults are version 1's; `recommended` gives the current ones per modality (zoo_core.defaults)
    backbone_lr_scale: float = Field(0.1, gt=0, le=1, description="backbone learning rate relative to the head's "
                                                                   "(image bases: 0.5)")
    layer_decay: float = Field(1.0, gt=0, le=1, description="each group toward the input gets lr x decay "
                                                            "(image bases: 0.8)")
    warmup_epochs: float = Field(1.0, ge=0, description="linear learning-rate warm-up, in epochs")
    freeze_norm_stats: bool = Field(
        False, description="keep BatchNorm running statistics from the base (helps with small batches; image "
                           "bases: true)")
    target_norm_stats: bool = Field(
        False, description="before training, re-estimate BatchNorm statistics on the whole training split (AdaBN); "
                           "with freeze_norm_stats they are then kept")
    feature_groups: list[str] | None = Field(
        None, description="the head reads the pooled, concatenated outputs of these layer groups; groups above "
                          "the highest of them stay frozen")
    head_init: Literal["random", "probe"] = Field(
        "random", description="the new head's start: random, or the linear probe fitted on the base's features of "
                              "the training split (LP-FT, Kumar et al. 2022)")

    @classmethod
    def recommended(cls, modality):
        if modality == "image":
            # BatchNorm keeps the base's statistics: batches of a few dozen images estimate them poorly (the
            # target's own, estimated once on all its training images, measured no better: README "Defaults");
            # the backbone learns at half the head's rate, less toward the input
            return {"strategy": {"freeze_norm_stats": True, "backbone_lr_scale": 0.5, "layer_decay": 0.8}}
        return {}

    def recomputes_norm_statistics(self) -> bool:
        return self.target_norm_stats

    def probe_initialises_head(self) -> bool:
        return self.head_init == "probe"

    def check_groups(self, groups):
        for name in self.feature_groups or ():
            if name == groups[-1]:
                raise ZooError("finetune: feature_groups cannot include the head")
            resolve_group(name, groups)

    def head_options(self):
        return {"feature_groups": self.feature_groups} if self.feature_groups else {}

    def default_warmup_epochs(self) -> float:
        return self.warmup_epochs

    def freezes_norm_statistics(self) -> bool:
        return self.freeze_norm_stats

    def lr_scales(self, groups, epoch):
        scales = decayed(groups, self.layer_decay, self.backbone_lr_scale)
        if self.feature_groups:  # groups above the highest tapped one do not reach the head: keep them frozen
            top = max(resolve_group(name, groups) for name in self.feature_groups)
            scales = [0.0 if top < i < len(groups) - 1 else s for i, s in enumerate(scales)]
        return scales


class GradualUnfreeze(Strategy):
    """ULMFiT: start with the head, unfreeze one more group from the top every `every` epochs."""

    name = "gradual-unfreeze"
    every: int = Field(1, ge=1, description="epochs between two unfreezings")
    layer_decay: float = Field(1.0, gt=0, le=1, description="each group toward the input gets lr x decay")

    def lr_scales(self, groups, epoch):
        unfrozen = 1 + epoch // self.every
        scales = decayed(groups, self.layer_decay)
        return [s if i >= len(groups) - unfrozen else 0.0 for i, s in enumerate(scales)]


class BitFit(Strategy):
    """Only biases, normalisation layers and the head train (BitFit, Ben Zaken et al. 2022)."""

    name = "bitfit"
    freeze_norm_stats: bool = Field(
        False, description="keep BatchNorm running statistics from the base (its affine parameters still train; "
                           "image bases: true)")

    @classmethod
    def recommended(cls, modality):
        # from defaults version 3 (zoo_core.defaults): statistics from batches of a few dozen target images cost
        # 1.5-15 points on PneumoniaMNIST (README, "From ImageNet")
        return {"strategy": {"freeze_norm_stats": True}} if modality == "image" else {}

    def freezes_norm_statistics(self) -> bool:
        return self.freeze_norm_stats

    def lr_scales(self, groups, epoch):
        return [1.0] * len(groups)

    def trains_parameter(self, module: nn.Module, param_name: str, group: str) -> bool:
        return group == "head" or param_name.endswith("bias") or isinstance(module, NORM_TYPES)


class Lora(Strategy):
    """Low-rank adapters (peft) on the backbone's linear/conv layers; the backbone's weights stay frozen."""

    name = "lora"
    relation = "adapter"
    requires = ("peft",)
    r: int = Field(8, ge=1, description="rank of the adapters")
    alpha: float = Field(16.0, gt=0, description="scaling numerator: adapters are scaled by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapters' input")
    target_modules: list[str] | None = Field(
        None, description="module names to adapt (default: the backbone's own targets, e.g. BERT's attention "
                          "projections, else every conv/linear layer but the stem)")
    freeze_norm_stats: bool = Field(
        False, description="keep BatchNorm running statistics from the base (they are no parameters: without this "
                           "they follow the target's batches; image bases: true)")
    head_init: Literal["random", "probe"] = Field(
        "random", description="the new head's start: random, or the linear probe fitted on the base's features of "
                              "the training split (LP-FT, Kumar et al. 2022)")
    _config: Any = PrivateAttr(None)  # the peft LoraConfig injected by prepare(), saved by export()

    @classmethod
    def recommended(cls, modality):
        return {"strategy": {"freeze_norm_stats": True}} if modality == "image" else {}  # as bitfit's

    def probe_initialises_head(self) -> bool:
        return self.head_init == "probe"

    def freezes_norm_statistics(self) -> bool:
        return self.freeze_norm_stats

    def lr_scales(self, groups, epoch):
        return [1.0] * len(groups)

    def trains_parameter(self, module: nn.Module, param_name: str, group: str) -> bool:
        return group == "head" or "lora_" in param_name

    def prepare(self, model) -> None:
        """Inject adapters in place (peft), so layer groups and checkpoints keep the backbone's shape."""
        peft = _peft()
        targets = self.target_modules or model.spec.adapter_target_names(model.backbone)
        if not targets:
            raise ZooError(f"lora: no linear or conv layers to adapt in backbone '{model.spec.name}'")
        config = peft.LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                                 target_modules=targets, bias="none")
        try:
            peft.inject_adapter_in_model(config, model.backbone)
        except ValueError as exc:
            raise ZooError(f"lora: {exc}") from None
        self._config = config

    def export(self, model, folder: Path) -> None:
        """The adapters on their own, in peft's file names, then merged so model.safetensors loads without peft."""
        from peft.tuners.lora import LoraLayer

        adapter = {k: v.detach().cpu().contiguous() for k, v in model.backbone.state_dict().items() if "lora_" in k}
        save_file(adapter, folder / "adapter_model.safetensors")
        config = self._config.to_dict()
        config["target_modules"] = sorted(config["target_modules"])
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        for name, module in list(model.backbone.named_modules()):
            if isinstance(module, LoraLayer):  # fold the adapter into its base layer and put the plain layer back
                module.merge()
                parent_name, _, leaf = name.rpartition(".")
                parent = model.backbone.get_submodule(parent_name) if parent_name else model.backbone
                setattr(parent, leaf, module.get_base_layer())


def _peft():
    try:
        import peft
    except ImportError:
        raise ZooError("the lora strategy needs peft: pip install 'transfer-zoo[lora]'") from None
    return peft


class Scratch(Strategy):
    """Random initialisation, every group trains: the baseline every transfer result is compared with."""

    name = "scratch"
    uses_pretrained = False

    def lr_scales(self, groups, epoch):
        return [1.0] * len(groups)


class Auto(Strategy):
    """Trains each candidate (a strategy, with its data and train values) and keeps the one best on validation."""

    name = "auto"
    candidates: list[dict[str, Any]] | None = Field(
        None, description="each {strategy: ..., data: {...}, train: {...}} laid over the recipe; default: the "
                          "modality's (zoo_core.defaults.AUTO_CANDIDATES)")

    @classmethod
    def recommended(cls, modality):
        from zoo_core.defaults import AUTO_CANDIDATES

        return {"strategy": {"candidates": AUTO_CANDIDATES.get(modality, [])}}

    def lr_scales(self, groups, epoch):  # never called: the engine refuses 'auto' (zoo_core.auto runs it)
        raise ZooError("strategy 'auto' chooses between whole runs (zoo_core.auto)")


@hookimpl
def register_strategies(register):
    for strategy in (LinearProbe, Freeze, Finetune, GradualUnfreeze, BitFit, Lora, Scratch, Auto):
        register(strategy)
