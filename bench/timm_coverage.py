"""zoo-timm over every architecture timm lists: each built on the meta device (shapes only, no memory, no weights),
its layer groups checked to hold every parameter exactly once, and its feature width checked against a forward
pass on the meta device where torch can run one there.

Counts: ok (groups and feature width checked), ok-groups (groups checked; the meta forward is not possible for
this model, reason stated), failed (with the reason), skipped (above the parameter budget, `--max-params`,
default 1e9; the count comes from the meta build itself). Long: run it in the background (about a second per
architecture on one core). Options: --only PATTERN (timm's wildcards), --limit N, --json (one JSON object last),
--timeout S per architecture (default 120).
"""

from __future__ import annotations

import collections
import signal
import sys
import time

import timm
import torch
import zoo_timm
from _common import emit, set_threads
from zoo_timm._groups import timm_groups


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


def arg(name: str, default: str | None) -> str | None:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def check(arch: str, max_params: float) -> tuple[str, str]:
    """(status, reason) of one architecture."""
    model, _ = zoo_timm.meta_model(arch)
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
    width = zoo_timm._feature_dim(model)
    cfgs = list(timm.models.get_arch_pretrained_cfgs(arch).values())
    size = tuple(cfgs[0].input_size) if cfgs else (3, 224, 224)
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.empty(1, *size, device="meta"))
    except Timeout:
        raise
    except Exception as exc:  # an op without a meta kernel, or one that reads values (data-dependent shapes)
        return "ok-groups", f"meta forward: {type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"
    if out.ndim != 2 or out.shape[1] != width:
        return "failed", f"feature_dim {width} but the model returns {tuple(out.shape)}"
    return "ok", f"{len(groups)} groups, width {width}"


def main() -> None:
    set_threads()
    archs = timm.list_models(arg("--only", "*"))
    if "--limit" in sys.argv:
        archs = archs[: int(arg("--limit", "0"))]
    max_params, timeout = float(arg("--max-params", "1e9")), int(arg("--timeout", "120"))
    signal.signal(signal.SIGALRM, _alarm)
    results, start = {}, time.perf_counter()
    for i, arch in enumerate(archs, 1):
        signal.alarm(timeout)
        try:
            status, reason = check(arch, max_params)
        except Timeout:
            status, reason = "failed", f"no answer within {timeout} s"
        except Exception as exc:
            status, reason = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        finally:
            signal.alarm(0)
        results[arch] = (status, reason)
        if status != "ok" or "--verbose" in sys.argv:
            print(f"[{i}/{len(archs)}] {arch}: {status}: {reason}", flush=True)
    counts = collections.Counter(status for status, _ in results.values())
    print(f"\n{len(archs)} timm {timm.__version__} architectures in {time.perf_counter() - start:.0f} s: "
          + ", ".join(f"{counts[s]} {s}" for s in ("ok", "ok-groups", "failed", "skipped")))
    for status in ("ok-groups", "failed", "skipped"):
        reasons = collections.Counter(":".join(r.split(":")[:2]) if status != "skipped" else "above the budget"
                                      for s, r in results.values() if s == status)
        for reason, n in reasons.most_common():
            print(f"  {status}: {n} x {reason}")
    emit({"counts": dict(counts), "results": {a: list(r) for a, r in results.items()}})


if __name__ == "__main__":
    main()
