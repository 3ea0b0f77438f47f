"""LoRA through peft: adapters injected in place, so layer groups and checkpoints keep the backbone's shape.

After training the adapters are saved on their own (`adapter_model.safetensors` + `adapter_config.json`, peft's
file names) and merged into the weights, so `model.safetensors` loads without peft.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo_core.errors import ZooError


def _peft():
    try:
        import peft
    except ImportError:
        raise ZooError("the lora strategy needs peft: pip install 'transfer-zoo[lora]'") from None
    return peft


def default_targets(backbone: nn.Module, family: str) -> list[str]:
    """BERT: the attention projections; CNNs: every conv and linear layer but the first conv."""
    names = []
    for name, module in backbone.named_modules():
        if family == "bert":
            if name.endswith(("attention.self.query", "attention.self.value")):
                names.append(name)
        elif isinstance(module, nn.Conv2d | nn.Linear) and module.weight.ndim > 1:
            names.append(name)
    if family != "bert" and names and isinstance(backbone.get_submodule(names[0]), nn.Conv2d):
        names = names[1:]  # the 3-channel stem conv has too little to adapt
    return names


def apply_lora(model, strategy) -> Any:
    peft = _peft()
    targets = strategy.target_modules or default_targets(model.backbone, model.spec.family)
    if not targets:
        raise ZooError(f"lora: no linear or conv layers to adapt in backbone '{model.spec.name}'")
    config = peft.LoraConfig(r=strategy.r, lora_alpha=strategy.alpha, lora_dropout=strategy.dropout,
                             target_modules=targets, bias="none")
    try:
        peft.inject_adapter_in_model(config, model.backbone)
    except ValueError as exc:
        raise ZooError(f"lora: {exc}") from None
    return config


def adapter_state(model) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in model.backbone.state_dict().items() if "lora_" in k}


def merge_lora(model) -> None:
    """Fold every adapter into its base layer and put the plain layer back (peft's merge_and_unload)."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.backbone.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, leaf = name.rpartition(".")
            parent = model.backbone.get_submodule(parent_name) if parent_name else model.backbone
            setattr(parent, leaf, module.get_base_layer())
