"""The engine: run a recipe — build, adapt, train, select, evaluate — and write a documented checkpoint.

One optimizer parameter group per layer group is built once; each epoch the strategy's learning-rate
scales switch `requires_grad` and the groups' learning rates (a frozen group has scale 0, and its BatchNorm
layers run in eval mode). When the strategy never trains the backbone, features are computed once and the
head trains on the cache. Inputs are prepared as the loaded weights were (their own preprocessing) by the
encoder the backbone declares. Under torchrun, each step's batch is shared among the ranks and evaluation is
gathered (zoo_core.distributed); `train.precision` autocasts, `train.grad_accum_steps` splits each step's batch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn
from tqdm.auto import tqdm

from zoo_core import defaults, distributed
from zoo_core.backbone import ImagePreprocessing, Preprocessing, TransferModel
from zoo_core.data import Split
from zoo_core.determinism import pin as pin_determinism
from zoo_core.errors import DataError, ZooError
from zoo_core.metrics import choose_threshold, classification_metrics, per_class_f1
from zoo_core.pipeline import PreparedData, batches, prepare
from zoo_core.plugins import get_backbone, get_reader, get_strategy
from zoo_core.recipe import Recipe, format_validation_error
from zoo_core.sources import PretrainedWeights, load_weights
from zoo_core.strategy import NORM_TYPES, Strategy


@dataclass
class RunResult:
    model: TransferModel
    classes: list[str]
    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    train_samples_per_second: float
    checkpoint: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ZooError(f"train.device '{name}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"train.device is '{name}' but no CUDA device is available")
    return device


def check_precision(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise ZooError(f"train.precision fp16 needs CUDA (the device is {device}); use bf16 or fp32")


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def build_strategy(recipe: Recipe, modality: str | None = None) -> Strategy:
    """The recipe's strategy; with `modality`, its unset parameters take the recommended defaults of the
    recipe's defaults version (zoo_core.defaults)."""
    cls = get_strategy(recipe.strategy.name)
    params = recipe.strategy.params if modality is None else \
        defaults.strategy_parameters(cls, recipe.strategy.params, modality, defaults.version_of(recipe))
    try:
        return cls(**params)
    except ValidationError as exc:
        raise ZooError(format_validation_error(exc, f"(strategy '{cls.name}')").replace(": ", ": strategy.", 1)) \
            from None


def resolve_defaults(recipe: Recipe, strategy: Strategy, modality: str, train_size: int) -> tuple[Recipe, dict]:
    """The recipe with every default the run uses written in (train section, defaults version), and which
    values came from defaults, with the strategy parameters taken from its recommended ones."""
    version = defaults.version_of(recipe)
    values, used = defaults.resolve_train(recipe, strategy, modality, train_size, version)
    used.update({f"strategy.{k}": v for k, v in strategy.model_dump(mode="json").items()
                 if k not in recipe.strategy.params and k in strategy.model_fields_set})
    return recipe.model_copy(update={"train": recipe.train.model_copy(update=values), "defaults": version}), used


def read_data(recipe: Recipe):
    cls = get_reader(recipe.data.reader)
    try:
        reader = cls(**recipe.data.args)
    except ValidationError as exc:
        message = format_validation_error(exc, f"(reader '{cls.name}')").replace(": ", ": data.args.", 1)
        raise ZooError(message) from None
    return reader.read()


def resolve_base(recipe: Recipe) -> tuple[PretrainedWeights | None, Any]:
    """The base weights (None for `base: scratch`) and the backbone spec, with the recipe's `backbone_options`."""
    if recipe.base == "scratch":
        weights, spec = None, get_backbone(recipe.backbone)
    else:
        weights = load_weights(recipe.base)
        if recipe.backbone and recipe.backbone != weights.spec.name:
            raise ZooError(f"backbone is '{recipe.backbone}' but base {recipe.base} is a '{weights.spec.name}'; "
                           "remove the backbone field or make them agree")
        spec = weights.spec
    if recipe.backbone_options:
        spec = spec.for_options({**spec.options, **recipe.backbone_options})
    return weights, spec


def check_modality(recipe: Recipe, modality: str, spec) -> None:
    """The data's modality is the one the backbone takes."""
    if modality != spec.modality:
        raise DataError(f"reader '{recipe.data.reader}' gives {modality} data but backbone "
                        f"'{spec.name}' takes {spec.modality}")


def input_preprocessing(spec, recipe: Recipe, base: PretrainedWeights | None) -> Preprocessing:
    """The loaded weights' own preprocessing (else the backbone's); `data.image_size` resizes whole images."""
    preprocessing = base.preprocessing if base is not None and base.preprocessing else spec.preprocessing
    if recipe.data.image_size and isinstance(preprocessing, ImagePreprocessing):
        size = recipe.data.image_size
        preprocessing = replace(preprocessing, input_size=size, resize_size=size, center_crop=False)
    return preprocessing


def make_encoder(spec, preprocessing: Preprocessing, recipe: Recipe, base: PretrainedWeights | None):
    return spec.make_encoder(preprocessing, files=base.files if base is not None else None,
                             tokenizer=recipe.data.tokenizer, max_length=recipe.data.max_length)


class Engine:
    """Runs one recipe. `train()` is the whole job; the pieces are methods so benchmarks can time them."""

    def __init__(self, recipe: Recipe, progress: bool = True, log: Callable[[str], None] | None = None):
        if recipe.strategy.name == "auto":  # before any global state (threads, seeds) is touched
            raise ZooError("strategy 'auto' chooses between whole runs: train it with `zoo train` or "
                           "zoo_core.run.run_recipe (zoo_core.auto), not one Engine")
        self.recipe, self.progress = recipe, progress
        self.log = log or (lambda message: None)
        cfg = recipe.train
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.world = distributed.current()
        self.device = distributed.place(pick_device(cfg.device), self.world)
        check_precision(cfg.precision, self.device)
        if cfg.sync_batchnorm and self.device.type != "cuda":
            raise ZooError("train.sync_batchnorm needs CUDA (torch's SyncBatchNorm runs on GPUs only); on CPU "
                           "each rank normalises with its share of the batch")
        self.generator = seed_everything(cfg.seed)  # the epoch order: the same on every rank
        self.determinism = pin_determinism(self.device)  # recorded in recipe.yaml (zoo_core.determinism)
        # augmentation draws differ between ranks (their images do); one process keeps one generator
        self.augment_generator = self.generator if not self.world.active else \
            torch.Generator().manual_seed(cfg.seed + 7919 * self.world.rank)
        build_strategy(recipe)  # a bad strategy block is refused before any weights load
        base, self.spec = resolve_base(recipe)
        self.strategy = build_strategy(recipe, self.spec.modality)
        # the scratch strategy keeps the base's architecture and tokenizer, not its weights
        self.weights = base if self.strategy.uses_pretrained else None
        dataset = read_data(recipe)
        check_modality(recipe, dataset.modality, self.spec)
        self.data: PreparedData = prepare(dataset, recipe.data, cfg.seed)
        recipe, self.defaults_used = resolve_defaults(recipe, self.strategy, self.spec.modality, len(self.data.train))
        self.recipe = recipe
        num_classes = len(self.data.classes)
        if recipe.head.num_classes is not None and recipe.head.num_classes != num_classes:
            raise DataError(f"head.num_classes is {recipe.head.num_classes} but the data has {num_classes} "
                            f"classes ({', '.join(self.data.classes)})")
        if cfg.threshold == "validation":
            if num_classes != 2:
                raise DataError(f"train.threshold: validation needs two classes; the data has {num_classes}")
            if self.data.val is None or not len(self.data.val):
                raise DataError("train.threshold: validation needs a validation split (set data.val)")
        torch.manual_seed(cfg.seed)  # the head's initialisation depends on the seed only
        self.strategy.check_groups([*self.spec.group_names, "head"])
        self.model = self.spec.create_model(num_classes, dropout=recipe.head.dropout, **self.strategy.head_options())
        if self.weights is not None:
            self.model.load_backbone_state(self.weights.state_dict, self.weights.origin)
        self.strategy.prepare(self.model)
        if cfg.sync_batchnorm and self.world.active:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.groups = self.model.layer_groups()
        self.group_names = [g.name for g in self.groups]
        # the scratch strategy keeps the base's preprocessing (and tokenizer) with its architecture
        self.preprocessing = input_preprocessing(self.spec, recipe, base)
        self.encoder = make_encoder(self.spec, self.preprocessing, recipe, base)
        self.model.to(self.device)

    # -- optimisation ------------------------------------------------------------------------------------
    def _group_parameters(self) -> list[list[nn.Parameter]]:
        """Per layer group, the parameters the strategy may ever train (fixed for the whole run)."""
        per_group = []
        for group in self.groups:
            params = []
            for module in group.modules:
                for qualified, param in module.named_parameters():
                    owner = module.get_submodule(qualified.rpartition(".")[0])
                    if self.strategy.trains_parameter(owner, qualified, group.name):
                        params.append(param)
                    else:
                        param.requires_grad_(False)
            per_group.append(params)
        return per_group

    def _optimizer(self, per_group: list[list[nn.Parameter]]) -> torch.optim.Optimizer:
        cfg = self.recipe.train
        groups = [{"params": params, "lr": cfg.lr, "name": name}
                  for name, params in zip(self.group_names, per_group, strict=True) if params]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _apply_epoch(self, epoch: int, per_group, optimizer) -> list[float]:
        scales = self.strategy.lr_scales(self.group_names, epoch)
        self.model.train()
        for group, params, scale in zip(self.groups, per_group, scales, strict=True):
            for param in params:
                param.requires_grad_(scale > 0)
            if scale == 0:
                for module in group.modules:
                    module.eval()  # frozen BatchNorm keeps its running statistics
        if self.strategy.freezes_norm_statistics():
            for module in self.model.backbone.modules():
                if isinstance(module, NORM_TYPES):
                    module.eval()  # normalise with the base's statistics; affine parameters still train
        by_name = dict(zip(self.group_names, scales, strict=True))
        for param_group in optimizer.param_groups:
            param_group["scale"] = by_name[param_group["name"]]
        return scales

    def _lr_factor(self, step: int, total: int, warmup: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if self.recipe.train.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    # -- data --------------------------------------------------------------------------------------------
    def encode(self, split: Split, idx: np.ndarray, augment: bool = False):
        inputs = split.inputs[idx] if isinstance(split.inputs, np.ndarray) else [split.inputs[i] for i in idx]
        batch = self.encoder(inputs, augment=augment, generator=self.augment_generator)
        if isinstance(batch, dict):
            return {k: v.to(self.device) for k, v in batch.items()}
        return batch.to(self.device)

    def autocast(self):
        precision = self.recipe.train.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    def _sharded(self, split: Split, forward, batch_size: int | None, width: int) -> torch.Tensor:
        """`forward` over this rank's share of the split, gathered: the whole split's rows on every rank."""
        mine = distributed.shard(np.arange(len(split)), self.world)
        with self.autocast():
            out = [forward(self.encode(split, mine[idx])).float().cpu()
                   for idx in batches(len(mine), batch_size or self.recipe.train.batch_size, shuffle=False)]
        return distributed.gather_rows(torch.cat(out) if out else torch.empty(0, width), self.world)

    @torch.no_grad()
    def features(self, split: Split, batch_size: int | None = None) -> torch.Tensor:
        self.model.eval()
        return self._sharded(split, self.model.features, batch_size, self.spec.feature_dim)

    @torch.no_grad()
    def logits(self, split: Split, cached: torch.Tensor | None = None) -> torch.Tensor:
        self.model.eval()
        if cached is not None:
            with self.autocast():
                return self.model.head(cached.to(self.device)).float().cpu()
        return self._sharded(split, self.model, None, len(self.data.classes))

    def evaluate(self, split: Split, cached: torch.Tensor | None = None,
                 logits: torch.Tensor | None = None) -> dict[str, float]:
        logits = self.logits(split, cached) if logits is None else logits
        labels = torch.from_numpy(split.labels)
        metrics = classification_metrics(split.labels, logits.softmax(1).numpy(), len(self.data.classes))
        metrics["loss"] = float(F.cross_entropy(logits, labels))
        return metrics

    # -- the run -----------------------------------------------------------------------------------------
    def train(self) -> RunResult:
        cfg, data = self.recipe.train, self.data
        start = time.perf_counter()
        cache = self.strategy.frozen_backbone
        if cache and self.recipe.data.augment:
            self.log("note: augmentation is off for linear-probe: its features are computed once and cached")
        feats: dict[str, torch.Tensor | None] = {"train": None, "val": None, "test": None}
        if cache:
            for name in feats:
                split = getattr(data, name)
                feats[name] = self.features(split) if split is not None else None
            if self.model.head.standardize:
                self.model.head.set_statistics(feats["train"].to(self.device))
            settings = self.strategy.head_fit()
            if settings is not None:
                return self._fit_head(feats, settings, start)
        if self.strategy.recomputes_norm_statistics():
            self._target_norm_statistics()
        head_init = self._probe_head() if self.strategy.probe_initialises_head() else None
        per_group = self._group_parameters()
        optimizer = self._optimizer(per_group)
        steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        warmup = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch)) if total > 1 else 0
        history, best, best_epoch, best_state, stale = [], None, 0, None, 0
        step, samples, train_seconds = 0, 0, 0.0
        labels_all = torch.from_numpy(data.train.labels)
        loss_weights = self._class_weights()
        replicas = distributed.Replicas(self.model.head if cache else self.model, self.world,
                                        cfg.find_unused_parameters)
        scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        for epoch in range(cfg.epochs):
            self._apply_epoch(epoch, per_group, optimizer)
            epoch_start, running, seen = time.perf_counter(), 0.0, 0
            bar = tqdm(batches(len(data.train), cfg.batch_size, shuffle=True, generator=self.generator),
                       total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not self.progress,
                       leave=False, unit="batch")
            for idx in bar:
                factor = self._lr_factor(step, total, warmup)
                for param_group in optimizer.param_groups:
                    param_group["lr"] = cfg.lr * param_group["scale"] * factor
                loss = self._step(idx, feats["train"], labels_all, loss_weights, replicas, scaler, optimizer)
                step += 1
                seen += len(idx)
                running += loss * len(idx)
                rate = seen / max(1e-9, time.perf_counter() - epoch_start)
                # rank 0's share of the loss, scaled: the ranks' sum is known at the end of the epoch
                bar.set_postfix(loss=f"{running * self.world.size / seen:.4f}", samples_s=f"{rate:.0f}")
            running, = distributed.all_sum([running], self.world, self.device)  # each rank summed its share
            distributed.sync_buffers(self.model, self.world)
            train_seconds += time.perf_counter() - epoch_start
            samples += seen
            record = {"epoch": epoch + 1, "train_loss": running / max(1, seen)}
            if data.val is not None and len(data.val):
                record.update({f"val_{k}": v for k, v in self.evaluate(data.val, feats["val"]).items()})
            history.append(record)
            self._log_record(record)
            score = self._score(record)
            if best is None or score > best:
                best, best_epoch, stale = score, epoch + 1, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                stale += 1
                if cfg.early_stopping and stale >= cfg.early_stopping.patience:
                    self.log(f"early stopping: no better {cfg.select_metric} for {stale} epochs")
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        extra = {"selection": self.selection(), **self._finish(feats)}
        if head_init:
            extra["head_init"] = head_init
        return RunResult(self.model, data.classes, extra.pop("metrics"), history, best_epoch,
                         time.perf_counter() - start, samples / max(1e-9, train_seconds), extra=extra)

    @torch.no_grad()
    def _probe_head(self) -> dict[str, Any]:
        """LP-FT: the head starts as the linear probe on the base's features of the training split (before any
        backbone parameter moves: LoRA's adapters start at zero), fitted as the linear-probe strategy fits it."""
        from zoo_core.probe import probe_head

        features = self.features(self.data.train).cpu()
        weight, bias, info = probe_head(features, self.data.train.labels, len(self.data.classes),
                                        seed=self.recipe.train.seed,
                                        balanced=self.recipe.train.class_weights == "balanced")
        self.model.head.linear.weight.copy_(weight.to(self.model.head.linear.weight))
        self.model.head.linear.bias.copy_(bias.to(self.model.head.linear.bias))
        self.log(f"head: the linear probe on the base's features (C = {info['C']:.4g})")
        return info

    @torch.no_grad()
    def _target_norm_statistics(self, batch_size: int = 256) -> None:
        """AdaBN: BatchNorm's running statistics re-estimated on the whole training split (every rank reads all of
        it, so they agree), as a plain average over batches of up to 256: one batch for a few-label split."""
        norms = [m for m in self.model.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        self.model.eval()
        for module in norms:
            module.reset_running_stats()
            module.momentum = None  # cumulative average
            module.train()
        with self.autocast():
            for idx in batches(len(self.data.train), batch_size, shuffle=False):
                self.model.features(self.encode(self.data.train, idx))
        for module, momentum in zip(norms, momenta, strict=True):
            module.momentum = momentum

    def _step(self, idx: np.ndarray, train_feats: torch.Tensor | None, labels_all: torch.Tensor,
              loss_weights: torch.Tensor | None, replicas: distributed.Replicas, scaler, optimizer) -> float:
        """One optimizer step on the batch `idx`: this rank's share of it, in `grad_accum_steps` micro-batches.
        Each loss is a sum normalised by the whole batch (its size, or its class weights' sum) and multiplied by
        the world size, so DDP's average of the ranks' gradients is the whole batch's mean-loss gradient, as in
        one process. Returns this rank's part of the batch's mean loss."""
        cfg = self.recipe.train
        norm = float(loss_weights.cpu()[labels_all[idx]].sum()) if loss_weights is not None else float(len(idx))
        parts = [part for part in np.array_split(distributed.shard(idx, self.world), cfg.grad_accum_steps)
                 if len(part)]
        scale = self.world.size / norm
        if not parts:  # fewer examples than ranks: one example weighted 0, so this rank joins the all-reduce
            parts, scale = [idx[:1]], 0.0
        module = self._trained_module(replicas)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i, part in enumerate(parts):
            with replicas.no_sync(i < len(parts) - 1):
                with self.autocast():
                    inputs = train_feats[part].to(self.device) if train_feats is not None else \
                        self.encode(self.data.train, part, augment=self.recipe.data.augment)
                    logits = module(inputs)
                loss = F.cross_entropy(logits.float(), labels_all[part].to(self.device), weight=loss_weights,
                                       label_smoothing=cfg.label_smoothing, reduction="sum")
                scaler.scale(loss * scale).backward()
            total += loss.item() / norm * (scale > 0)
        scaler.step(optimizer)
        scaler.update()
        return total

    def _trained_module(self, replicas: distributed.Replicas) -> nn.Module:
        """The (DDP-wrapped) module, compiled once per wrapper when `train.compile` asks for it."""
        module = replicas.get()
        if not self.recipe.train.compile:
            return module
        if getattr(self, "_compiled_for", None) is not module:
            self._compiled_for, self._compiled = module, torch.compile(module)
        return self._compiled

    def _fit_head(self, feats: dict[str, torch.Tensor | None], settings: dict[str, Any], start: float) -> RunResult:
        """The head of a frozen backbone, fitted to convergence on the cached features (zoo_core.probe)."""
        from zoo_core.probe import fit_probe

        cfg, data, head = self.recipe.train, self.data, self.model.head
        self.log("linear-probe (lbfgs): the head is fitted to convergence; train.lr, epochs and the head's "
                 "dropout are not used")
        with torch.no_grad():
            x = feats["train"].to(self.device)
            x = head.standardized(x).cpu()
        fit_start = time.perf_counter()
        score = settings.get("score", "accuracy")
        fit = fit_probe(x, data.train.labels, len(data.classes), C=settings.get("C"),
                        folds=settings.get("folds", 5), seed=cfg.seed, balanced=cfg.class_weights == "balanced",
                        score=score)
        seconds = time.perf_counter() - fit_start
        with torch.no_grad():
            head.linear.weight.copy_(fit.weight.to(head.linear.weight))
            head.linear.bias.copy_(fit.bias.to(head.linear.bias))
        self.model.eval()
        record: dict[str, float] = {"epoch": 1, "train_loss": fit.loss}
        if data.val is not None and len(data.val):
            record.update({f"val_{k}": v for k, v in self.evaluate(data.val, feats["val"]).items()})
        self._log_record(record)
        extra = {"selection": {"rule": "one fit (no epochs to choose from)"}, **self._finish(feats)}
        probe = {"solver": "lbfgs", "C": fit.C, "iterations": fit.iterations, "seconds": round(seconds, 3),
                 "selected_by": (f"stratified {fit.folds}-fold cross-validation on the training split, "
                                 f"{CV_RULES[score]}" if fit.folds else
                                 ("given" if settings.get("C") else "default C=1: a class has one training example"))}
        if fit.cv:
            probe["cv_accuracy"], probe["cv_log_loss"] = fit.cv_accuracy, fit.cv
        return RunResult(self.model, data.classes, extra.pop("metrics"), [record], 1, time.perf_counter() - start,
                         len(data.train) / max(1e-9, seconds), extra={"probe": probe, **extra})

    def _log_record(self, record: dict[str, float]) -> None:
        self.log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))

    def _class_weights(self) -> torch.Tensor | None:
        if self.recipe.train.class_weights == "none":
            return None
        from zoo_core.probe import class_weights

        return class_weights(self.data.train.labels, len(self.data.classes)).float().to(self.device)

    def _finish(self, feats: dict[str, torch.Tensor | None]) -> dict[str, Any]:
        """After the kept weights are in place: the decision threshold when asked for, then the test metrics."""
        data, out = self.data, {"metrics": {}}
        if self.recipe.train.threshold == "validation":
            out["threshold"] = self._choose_threshold(feats["val"])
        if data.test is not None and len(data.test):
            logits = self.logits(data.test, feats["test"])
            out["metrics"] = self.evaluate(data.test, feats["test"], logits)
            out["test_per_class_f1"] = per_class_f1(data.test.labels, logits.softmax(1).numpy(), data.classes)
        return out

    def _choose_threshold(self, cached_val: torch.Tensor | None) -> dict[str, Any]:
        """Two classes: the threshold on P(class 1) that maximises validation macro-F1, folded into the head's
        bias (class 1's logit minus logit(t)), so the checkpoint's plain argmax applies it everywhere."""
        data = self.data
        positive = self.logits(data.val, cached_val).softmax(1)[:, 1].numpy()
        threshold, f1 = choose_threshold(data.val.labels, positive)
        with torch.no_grad():
            self.model.head.linear.bias[1] -= math.log(threshold / (1 - threshold))
        return {"value": threshold, "chosen_by": "validation macro-F1", "validation_macro_f1": f1,
                "validation_size": len(data.val), "applied_as": "shift of class 1's bias by -logit(threshold)"}

    def _score(self, record: dict[str, float]) -> tuple[float, ...]:
        return selection_key(record, self.recipe.train.select_metric)

    def selection(self) -> dict[str, Any]:
        """How the kept epoch was chosen, for recipe.yaml and the card."""
        val = self.data.val
        if val is None or not len(val):
            return {"rule": "last epoch (no validation split)"}
        metric = self.recipe.train.select_metric
        return {"metric": f"validation {metric}", "tie_break": None if metric == "loss" else "lower validation loss",
                "validation_size": len(val), "validation_carved": "carved_from" in self.data.provenance.get("val", {})}


CV_RULES = {"accuracy": "held-out accuracy (ties to the stronger penalty)",
            "log_loss": "held-out log-loss (the strongest penalty within one standard error of the best)"}


def selection_key(record: dict[str, float], metric: str) -> tuple[float, ...]:
    """Higher is better. Ties in the metric go to the lower validation loss: a tiny validation split saturates
    (6 examples: 100% at epoch 1), and a strict `>` on the metric alone then kept the under-fitted first epoch
    (measured in bench/selection.py). No validation split: the last epoch wins."""
    key = f"val_{metric}"
    if key not in record:
        return (float(record["epoch"]),)
    if metric == "loss":
        return (-record[key],)
    return (record[key], -record.get("val_loss", 0.0))
