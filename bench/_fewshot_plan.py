"""Which cells bench/fewshot.py's full run measures, which it leaves out and why, and what it costs.

The whole grid (5 targets and bases x 3 k x 3 seeds x 7 strategies and the plain baselines) is hours on this
2-core machine, nearly all of it MiniLM and EfficientNet-Lite0 training runs. The full run keeps:
- the probes everywhere (zoo linear-probe, plain probe, TF-IDF): seconds a run, their frozen features computed
  once per split (bench/_features.py); issue 14's first target is judged on every one of their cells;
- the recommended default of the modality and scratch at k = 32 on every target: issue 14's second target, judged
  against the best plain baseline, so every plain baseline runs there, SST-2's scratch too (MiniLM from random
  weights, as costly as a lora run: ~200 s of one-thread CPU a run, 10 of the hour's minutes for 3 seeds);
- every strategy at k = 32 on the MNIST chain, whose 32x32 ResNet-18 trains in seconds.
Everything else runs with `--all`, or by naming it (`--only M --k K --targets T`).
"""

from __future__ import annotations

from collections import defaultdict

PROBES = ("linear-probe", "plain-probe", "tfidf")

# One-thread CPU seconds a run, measured with --log on this machine under load (bench/results/fewshot-grid.jsonl,
# `cpu_seconds`), for the plan's estimate only; probes averaged over the targets and k = 8, 32, 128 (100 validation
# and up to 1,000 test examples). `probe`: the zoo's linear probe, which encodes the splits a seed has not seen yet
# (a seed's validation and test splits are shared by its k's); `plain`: the plain probe and TF-IDF, which read
# them from the cache. `trained`: a training run at k = 32 (Lite0: scratch 55, finetune 100; MiniLM: lora, 100
# steps, a validation pass an epoch, measured at an earlier stop).
COST = {"mnist": {"probe": 12, "plain": 2, "trained": 15},
        "imagenet": {"probe": 8, "plain": 1, "trained": 80},
        "minilm": {"probe": 9, "plain": 1, "trained": 200}}
SOURCE_COST = 120  # training the MNIST-chain base once

WHY = {
    "minilm": "a MiniLM fine-tune costs ~{trained} s of one-thread CPU a run",
    "imagenet": "an EfficientNet-Lite0 run at 96x96 costs ~{trained} s of one-thread CPU",
    "mnist": "k = 8 and 128 add ~{trained} s a run for cells no target judges",
}


def skip_reason(target: dict, base: str, k: int, method: str, recommended: dict[str, str]) -> str | None:
    """None when the full run measures this cell, else why it does not."""
    if method in PROBES:
        return None
    cost = WHY[base].format(**COST[base])
    if target.get("reported_only"):
        return f"reported only, not a target; {cost}"
    if k == 32 and method in (recommended[target["modality"]], "scratch"):
        return None  # the second target is judged here: the recommended default against the best plain baseline
    if base == "mnist" and k == 32:
        return None
    return f"no target judges it; {cost}"


def describe_skipped(skipped: list[tuple], seeds: int | None = None) -> str:
    """The skipped cells, grouped by reason: (target, base, k, method, reason) each."""
    by_reason: dict[str, dict[tuple, list[int]]] = defaultdict(lambda: defaultdict(list))
    for name, base, k, method, reason in skipped:
        by_reason[reason][(name, base, method)].append(k)
    runs = f" ({len(skipped) * seeds} runs)" if seeds else ""
    lines = [f"skipped by the full run's plan (bench/_fewshot_plan.py; --all runs them){runs}:"]
    for reason, cells in by_reason.items():
        lines.append(f"  {reason}:")
        for (name, base, method), ks in cells.items():
            lines.append(f"    {name}/{base} {method} k={','.join(map(str, sorted(ks)))}")
    return "\n".join(lines)


def run_cost(base: str, method: str) -> float:
    """One-thread CPU seconds of one run (a seed) of `method` on `base`, from COST; `auto` trains each of its
    default candidates."""
    from zoo_core.defaults import AUTO_CANDIDATES

    runs = len(AUTO_CANDIDATES["text" if base == "minilm" else "image"]) if method == "auto" else 1
    return runs * COST[base]["probe" if method == "linear-probe" else "plain" if method in PROBES else "trained"]


def estimate(cells: list[tuple], seeds: int, test_cap: int = 1000) -> float:
    """One-thread CPU seconds for these (target, base, k, method) cells, from COST (a source run included)."""
    total = SOURCE_COST if any(base == "mnist" for _, base, _, _ in cells) else 0
    for _, base, _, method in cells:
        total += run_cost(base, method) * seeds * (0.5 + 0.5 * test_cap / 1000)
    return total
