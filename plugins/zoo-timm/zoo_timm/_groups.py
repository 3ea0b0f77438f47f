"""Layer groups of any timm model, from timm's own `group_matcher`.

Every timm model declares how its parameters group from input to output (`model.group_matcher(coarse=True)`:
the stem, then each stage or block, the final norm joining the last one); timm uses it for layer-wise learning-rate
decay, which is what the zoo's strategies do with groups. Here each group of parameter names becomes the fewest
modules that hold exactly those parameters, so a stage is one module (`stages.0`) rather than its hundred leaves.
"""

from __future__ import annotations

from collections.abc import Iterable

from timm.models import group_parameters
from torch import nn

# The core adds the new head as a group called "head"; a timm module of that name (ConvNeXt's head, holding its
# norm once the classifier is gone) is renamed.
RESERVED = {"head": "head_norm"}


class _Parameters(nn.Module):
    """Parameters that sit on the model itself (a ViT's cls_token and pos_embed), or on a module whose other
    parameters are in other groups, as a module a group can hold.

    It is never attached to the model, so the parameters keep their one name in the state dict."""

    def __init__(self, named: Iterable[tuple[str, nn.Parameter]]):
        super().__init__()
        for name, param in named:
            self.register_parameter(name.replace(".", "_"), param)

    def forward(self, *args):  # pragma: no cover - a holder, never called
        raise RuntimeError("a parameter holder is not a layer")


def timm_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The layer groups of a timm model (built with `num_classes=0`), input to output, every parameter once."""
    try:
        by_group = group_parameters(model, model.group_matcher(coarse=True))
    except (AttributeError, AssertionError, NotImplementedError):  # no group_matcher, or no coarse one (RDNet)
        by_group = _groups_from_feature_info(model)
    group_of = {name: gid for gid, names in by_group.items() for name in names}
    # the groups of the parameters under each module: a module whose parameters all share one group can stand
    # for them. Every path to a parameter counts: a module two parents share (CoaT's convolutional position
    # encoding) is seen under both, so neither parent stands for a group the shared parameter is not in.
    params = dict(model.named_parameters())
    group_of_param = {id(params[name]): gid for name, gid in group_of.items()}
    under: dict[str, set[int]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        gid = group_of_param[id(param)]
        parts = name.split(".")[:-1]
        for depth in range(1, len(parts) + 1):
            under.setdefault(".".join(parts[:depth]), set()).add(gid)
    modules = dict(model.named_modules())
    groups: dict[int, list[str]] = {gid: [] for gid in by_group}
    loose: dict[int, list[tuple[str, nn.Parameter]]] = {gid: [] for gid in by_group}
    for name, gid in group_of.items():
        parts = name.split(".")[:-1]
        if not parts:
            loose[gid].append((name, params[name]))
            continue
        owner = next((".".join(parts[:d]) for d in range(1, len(parts) + 1) if under[".".join(parts[:d])] == {gid}),
                     None)
        if owner is None:  # its own module holds other groups' parameters too (Qwen3-ViT's encoder.pos_embed)
            loose[gid].append((name, params[name]))
            continue
        if owner not in groups[gid]:
            groups[gid].append(owner)
    result, used = [], set()
    for index, gid in enumerate(sorted(by_group)):
        members: list[nn.Module] = [_Parameters(loose[gid])] if loose[gid] else []
        members += [modules[path] for path in groups[gid]]
        result.append((_unique(_name(index, groups[gid]), used), members))
    return result


def _groups_from_feature_info(model: nn.Module) -> dict[int, list[str]]:
    """Parameter names by group for a model without a coarse `group_matcher` (MetaFormer's CAFormer, ConvFormer,
    PoolFormer; CSATv2, RDNet): one group per module timm lists in `feature_info` (its stages), what comes before
    them the stem, and what comes after (the final norm) joining the last stage. Without `feature_info`: one group
    per child."""
    info = getattr(model, "feature_info", None) or []
    prefixes = [f["module"] for f in info if f.get("module")] or [name for name, _ in model.named_children()]
    groups: dict[int, list[str]] = {}
    current = 0
    for name, _ in model.named_parameters():
        index = next((i + 1 for i, p in enumerate(prefixes) if name == p or name.startswith(p + ".")), None)
        current = index if index is not None else current
        groups.setdefault(current, []).append(name)
    return {gid: groups[key] for gid, key in enumerate(sorted(groups))}


def _name(index: int, paths: list[str]) -> str:
    """`stem` for the first group; otherwise its first module's path (`stages.2` -> `stages_2`, `layer3`)."""
    if index == 0 or not paths:
        return "stem" if index == 0 else f"group{index}"
    name = paths[0].replace(".", "_")
    return RESERVED.get(name, name)


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}_{n}", n + 1
    used.add(candidate)
    return candidate
