"""Where `zoo rank`'s seconds go, per target, candidate and phase, against the way it ranked before, measured in
the same run: a whole training engine per candidate (the data read and sampled again, the model built with random
weights and a head, then loaded; features in batches of 64 in the split's order; scikit-learn's Ledoit-Wolf).

bench/rank.py's targets and candidates (read from its --cache: run it first). Each measurement runs in a fresh
process, as `zoo rank` does, the two ways alternating; startup (importing the engine, discovering the plugins:
torchvision, timm, ...) is timed apart from the ranking. Wall and CPU seconds (on a shared machine CPU is the
steadier figure), the median over --repeats. With --log (bench/rank.py's), the compute ratio: one default
fine-tune of every candidate, as logged, over the ranking's seconds, with and without the startup. Every score
of the two ways is compared (the largest relative difference is printed).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PHASES = ("weights", "data", "model", "encoder", "encode", "forward", "scores")


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> dict[str, float]:
    wall, cpu = clocks()
    return {"wall": wall - start[0], "cpu": cpu - start[1]}


def engine_rank(data: dict, refs: list[str], seed: int = 0) -> dict[str, dict[str, float]]:
    """`zoo_core.rank` as it was: each candidate through a training engine."""
    import numpy as np
    import torch
    from sklearn.covariance import ledoit_wolf
    from threadpoolctl import threadpool_limits

    from zoo_core.recipe import recipe_from_dict
    from zoo_core.train import Engine
    from zoo_core.transferability import _source_probabilities, data_fingerprint, leep, logme, nce

    def h_score(f, y):
        f = f - f.mean(0)
        classes, counts = np.unique(y, return_counts=True)
        means = np.stack([f[y == c].mean(0) for c in classes])
        solved = np.linalg.solve(ledoit_wolf(f)[0], means.T)
        return float(((counts / len(y)) * np.einsum("cd,dc->c", means, solved)).sum())

    out = {}
    for ref in refs:
        recipe = recipe_from_dict({"base": ref, "strategy": "finetune", "data": data,
                                   "train": {"seed": seed, "device": "cpu", "batch_size": 64, "epochs": 1}})
        engine = Engine(recipe, progress=False)
        split = engine.data.train
        features = engine.features(split).numpy().astype(np.float64)
        labels = np.asarray(split.labels)
        data_fingerprint(engine.data.classes, split.inputs, labels)
        with threadpool_limits(torch.get_num_threads()):
            scores = {"logme": logme(features, labels), "hscore": h_score(features, labels)}
        probs = _source_probabilities(engine.weights, torch.from_numpy(features).float())
        if probs is not None:
            scores.update(leep=leep(probs, labels), nce=nce(probs, labels))
        out[ref] = scores
    return out


def child(target: str, way: str, cache: Path) -> None:
    """One measurement, in this fresh process: one JSON line on stdout."""
    import _rank_sets as rs
    import rank as bench_rank
    from _common import set_threads

    set_threads()
    modality = "image" if target in rs.IMAGE_TARGETS else "text"
    sets, quiet = {}, lambda message: None  # noqa: E731
    if modality == "image":
        sets.update(rs.image_halves(cache, 2000, 1000))
        bases = rs.image_candidates(sets, cache, False, quiet)
    else:
        sets.update(rs.text_sets(cache, 1000, 500))
        bases = rs.text_candidates(sets, cache, False, quiet)
    data = bench_rank.target_data(target, sets, modality)
    start = clocks()
    import zoo_core.train  # noqa: F401  (the engine's imports)
    from zoo_core.plugins import get_catalog

    get_catalog()  # plugin discovery: every installed plugin imported
    startup = since(start)
    start = clocks()
    phases = {}
    if way == "after":
        import zoo_core

        ranked = zoo_core.rank(data, list(bases.values()))
        failed = {r.candidate: r.error for r in ranked if r.error}
        if failed:
            raise SystemExit(f"could not score {failed}")
        scores = {r.candidate: r.scores for r in ranked}
        phases = {r.candidate: r.phases for r in ranked}
    else:
        scores = engine_rank(data, list(bases.values()))
    print(json.dumps({"startup": startup, "ranking": since(start), "scores": scores, "phases": phases,
                      "names": {ref: name for name, ref in bases.items()}}))


def fine_tune_seconds(target: str, names: dict[str, str], log: Path) -> float | None:
    """One default fine-tune and evaluation of every candidate, from bench/rank.py's --log (mean over the seeds
    logged for every candidate)."""
    import _rank_sets as rs
    import rank as bench_rank

    from zoo_core.defaults import RECOMMENDED

    modality = "image" if target in rs.IMAGE_TARGETS else "text"
    logged = bench_rank.Log(log)
    refs = {name: ref for ref, name in names.items()}
    totals = []
    for seed in range(10):
        rows = [logged.get(bench_rank.run_key(target, refs, RECOMMENDED[modality], bench_rank.EPOCHS[modality],
                                              1000, False, name, seed)) for name in refs]
        if all(rows):
            totals.append(sum(row["seconds"] for row in rows))
    return statistics.mean(totals) if totals else None


def measure(target: str, way: str, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, "--child", target, way, "--cache", str(cache)],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{target} {way} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(target: str, runs: dict[str, list[dict]], log: Path | None) -> dict:
    def median(way: str, part: str, clock: str) -> float:
        return statistics.median(run[part][clock] for run in runs[way])

    after, before = runs["after"][-1], runs["before"][-1]
    worst = max(abs(after["scores"][c][s] - v) / max(abs(v), 1e-12)
                for c, scores in before["scores"].items() for s, v in scores.items())
    missing = {c: set(s) ^ set(after["scores"][c]) for c, s in before["scores"].items()
               if set(s) != set(after["scores"][c])}
    train = fine_tune_seconds(target, after["names"], log) if log else None
    n = len(after["names"])
    print(f"\ntarget {target}: {n} candidates; median of {len(runs['after'])} runs, each in a fresh process")
    print(f"  {'':34}{'wall s':>8}{'CPU s':>8}" + ("   ratio to fine-tuning (CPU; with startup)" if train else ""))
    startup = {c: median("after", "startup", c) for c in ("wall", "cpu")}
    print(f"  {'startup (imports, plugins)':34}{startup['wall']:8.2f}{startup['cpu']:8.2f}")
    out = {"candidates": n, "startup": startup, "fine_tune_seconds": train, "max_relative_score_difference": worst}
    for way, label in (("before", "before: an engine per candidate"), ("after", "after: zoo_core.rank")):
        wall, cpu = median(way, "ranking", "wall"), median(way, "ranking", "cpu")
        ratio = f"   {train / cpu:5.0f}x; {train / (cpu + startup['cpu']):4.0f}x" if train else ""
        print(f"  {label:34}{wall:8.2f}{cpu:8.2f}{ratio}")
        out[way] = {"wall": wall, "cpu": cpu}
    if train:
        print(f"  one default fine-tune of every candidate, as logged: {train:.1f} s")
    print(f"  scores: largest relative difference {worst:.1e}"
          + (f"; differing score sets {missing}" if missing else ""))
    totals = {p: sum(ph.get(p, {}).get("cpu", 0.0) for ph in after["phases"].values()) for p in PHASES}
    print("  after, CPU s by phase (all candidates): " + ", ".join(f"{p} {v:.2f}" for p, v in totals.items()))
    print(f"  {'candidate':22}" + "".join(f"{p:>9}" for p in PHASES) + "  (CPU s; the first pays one-off imports)")
    for ref, ph in after["phases"].items():
        print(f"  {after['names'][ref]:22}" + "".join(f"{ph.get(p, {}).get('cpu', 0.0):9.3f}" for p in PHASES))
    out["phases_cpu"] = totals
    return out


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import options, require_shared_data

    parser = options(__doc__)
    parser.add_argument("--targets", default="mnist,cifar,sst2")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "zoo-bench" / "rank", help="bench/rank.py's --cache (default %(default)s)")
    parser.add_argument("--log", type=Path, help="bench/rank.py's --log: the fine-tunes' seconds, for the ratio")
    parser.add_argument("--repeats", type=int, default=2, help="measurements of each way (default %(default)s)")
    parser.add_argument("--child", nargs=2, metavar=("TARGET", "WAY"), help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.cache / "full")
    require_shared_data()
    if not (args.cache / "full").is_dir():
        parser.error(f"no candidates in {args.cache / 'full'}: run bench/rank.py first")
    results = {}
    for target in args.targets.split(","):
        runs = {"before": [], "after": []}
        for _ in range(args.repeats):
            for way in ("before", "after"):
                runs[way].append(measure(target, way, args.cache))
        results[target] = report(target, runs, args.log)
    if args.json:
        print(json.dumps(results))


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
