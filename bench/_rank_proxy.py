"""A brute-force baseline for `zoo rank`'s scores (bench/rank.py --proxy-epochs): every candidate trained by the
default recipe cut to a few epochs and judged on the target's validation split, never on test: what a user could do
with the compute a score saves instead of trusting a score. Each seed is one user's run; its taus are the mean over
the seeds, against the same ground truth as the scores'."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from _common import run
from _pool import in_workers
from _rank_sets import target_recipe

# how a proxy run orders the candidates: by the kept model's validation accuracy, ties to the lower validation loss
# (the rule `auto` itself chooses by; decided before measuring), and by the validation loss alone
ORDERS = {"proxy-acc": lambda row: (row["val_accuracy"], -row["val_loss"]),
          "proxy-loss": lambda row: (-row["val_loss"],)}


def recipe(base: str, data: dict, strategy: str, epochs: int, seed: int, out: Path) -> dict:
    """The ground truth's recipe (`_rank_sets.target_recipe`) cut to `epochs`. The proxy never reads test: the
    run evaluates one test example, which nothing looks at."""
    cut = {**data, "limit": {**data.get("limit", {}), "test": 1}}
    return target_recipe(base, cut, strategy, epochs, seed, out)


def validation_of(result) -> dict[str, float]:
    """The kept model's validation figures: auto's chosen candidate's, or the kept epoch's."""
    if "auto" in result.extra:
        auto = result.extra["auto"]
        return auto["candidates"][auto["chosen"]]["validation"]
    kept = [row for row in result.history if row.get("epoch") == result.best_epoch]
    return {key[len("val_"):]: value for key, value in kept[0].items() if key.startswith("val_")}


def run_one(job: dict) -> dict:
    """One proxy run (in a worker process, bench/_pool.py), timed there: loading, training, validation."""
    begun = time.perf_counter()
    result = run(recipe(job["base"], job["data"], job["strategy"], job["epochs"], job["seed"], Path(job["out"])))
    validation = validation_of(result)
    shutil.rmtree(job["out"])
    return {"val_accuracy": validation["accuracy"], "val_loss": validation["loss"],
            "seconds": time.perf_counter() - begun}


def key(target: str, ref: str, name: str, strategy: str, seed: int, epochs: int, labels: int, test_cap: int,
        quick: bool) -> str:
    """A proxy run's key in --log: everything that determines its result."""
    return json.dumps(["proxy", target, name, ref, strategy, seed, epochs, labels, test_cap, quick])


def scores(rows: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per candidate, its place in each order (0: last): a score the taus read like any other."""
    places = {name: {} for name in rows}
    for order, by in ORDERS.items():
        for place, name in enumerate(sorted(rows, key=lambda n: by(rows[n]))):
            places[name][order] = float(place)
    return places


def measure(target, names, refs, data, strategy, epochs, labels, test_cap, quick, args, log, tmp) -> list[dict]:
    """Every candidate's proxy run, seed by seed (in --jobs workers); those --log holds are not run again.
    A list of {candidate: {val_accuracy, val_loss, seconds}}, one per seed measured for every candidate."""
    key_of = lambda name, seed: key(target, refs[name], name, strategy, seed, epochs, labels, test_cap,  # noqa: E731
                                    quick)
    todo = [{"key": key_of(name, seed), "name": name, "base": refs[name], "data": data, "strategy": strategy,
             "epochs": epochs, "seed": seed, "out": str(tmp / f"proxy-{target}-{seed}-{name}")}
            for seed in range(args.proxy_seeds) for name in names if log.get(key_of(name, seed)) is None]
    if todo and not args.report:
        done = (in_workers(run_one, todo, args.jobs) if args.jobs > 1
                else ((job, run_one(job)) for job in todo))
        for job, outcome in done:
            if isinstance(outcome, BaseException):
                raise SystemExit(f"{target} proxy seed {job['seed']} {job['name']}: {type(outcome).__name__}: "
                                 f"{outcome}")
            log.add(job["key"], outcome)
            print(f"  {target} proxy seed {job['seed']} {job['name']}: validation accuracy "
                  f"{outcome['val_accuracy']:.3f}, loss {outcome['val_loss']:.3f} ({outcome['seconds']:.1f} s)",
                  flush=True)
    runs = [{name: log.get(key_of(name, seed)) for name in names} for seed in range(args.proxy_seeds)]
    return [rows for rows in runs if all(rows.values())]
