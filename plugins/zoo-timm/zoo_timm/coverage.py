"""The plugin's contract checked for one timm architecture on the meta device (shapes only, nothing allocated, no
weights): its layer groups hold every parameter exactly once under unique names, and the feature width the spec
states is the width of what the model returns. bench/timm_coverage.py runs it over every architecture; the tests
over a sample of the families that once failed it."""

from __future__ import annotations

import timm
import torch

from zoo_timm import _feature_dim, meta_model
from zoo_timm._groups import timm_groups


def check_architecture(arch: str, max_params: float = float("inf")) -> tuple[str, str]:
    """(status, reason): "ok"; "ok-groups" when torch cannot run the model on the meta device (an op without a
    meta kernel, or one that reads values), so only the groups were checked; "failed"; "skipped" above
    `max_params` parameters. A build that fails raises."""
    model, _ = meta_model(arch)
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    if total > max_params:
        return "skipped", f"{total / 1e6:,.0f}M parameters > budget {max_params / 1e6:,.0f}M"
    groups = timm_groups(model)
    names = [name for name, _ in groups]
    if len(set(names)) != len(names) or "head" in names:
        return "failed", f"group names not unique or 'head' taken: {names}"
    owners: dict[int, str] = {}
    for name, modules in groups:
        for module in modules:
            for param in module.parameters():
                if id(param) in owners:
                    return "failed", f"a parameter in both {owners[id(param)]} and {name}"
                owners[id(param)] = name
    missing = [n for n, p in params.items() if id(p) not in owners]
    if missing:
        return "failed", f"{len(missing)} parameters in no group ({', '.join(missing[:3])})"
    if len(owners) != len(params):
        return "failed", f"groups hold {len(owners) - len(params)} parameters the model does not have"
    width = _feature_dim(model)
    cfgs = list(timm.models.get_arch_pretrained_cfgs(arch).values())
    size = tuple(cfgs[0].input_size) if cfgs else (3, 224, 224)
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.empty(1, *size, device="meta"))
    except Exception as exc:  # an op without a meta kernel, or one that reads values (data-dependent shapes)
        return "ok-groups", f"meta forward: {type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"
    if out.ndim != 2 or out.shape[1] != width:
        return "failed", f"feature_dim {width} but the model returns {tuple(out.shape)}"
    return "ok", f"{len(groups)} groups, width {width}"
