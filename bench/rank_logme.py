"""Why does a target's LogME come out flat? bench/rank.py's image candidates (from its --cache) on one target, at
several labels a class, and per candidate what LogME's evidence maximisation settled on:

- LogME (mean over 3 labelled draws, and its spread over them) against the no-signal floor: the evidence when no
  feature explains anything (w = 0, beta = N / |y|^2), -0.268 for 10 balanced classes;
- gamma, the effective number of parameters fitted (0: the prior won, the floor), and log10(alpha / beta);
- the fixed point's iterations (100 is the cap) and how far its evidence is from a direct Nelder-Mead maximum;
- what LogME's original code (github.com/thuml/LogME, LogME.py, `_fit_fixed_point`) would return: it sums
  ln(alpha + beta sigma) over the min(N, D) non-zero sigma only, leaving out the D - N null directions' ln(alpha),
  so with N < D its value is ours + (D - N) / 2N ln(alpha), which grows with the feature dimension and scale;
- the features' top singular direction's share of their energy (their mean, for ReLU features) and mean norm;
- a linear probe's test accuracy (scikit-learn logistic regression, C cross-validated; labelled draw 0): how much
  the frozen features hold at that many labels;
and at the end Kendall's tau between the candidates' LogME at each k and at the largest k, and against the probe.
Run: `python bench/rank_logme.py [--cache DIR] [--target cifar] [--k 10,32,100]`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import _rank_sets as rs
import numpy as np
from _common import options, require_shared_data, set_threads

from zoo_core import transferability as T


def fixed_point(x: np.ndarray, y_energy: float, sigma: np.ndarray, n: int, d: int) -> dict:
    """transferability._max_log_evidence's iteration, keeping what it settled on."""
    from scipy.optimize import minimize

    x2, alpha, beta, iterations = x ** 2, 1.0, 1.0, 0
    while iterations < 100:
        iterations += 1
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2, res2 = T._fit(t, x2, y_energy, sigma)
        alpha, beta = gamma / max(m2, 1e-12), max(n - gamma, 1e-12) / max(res2, 1e-12)
        if abs(alpha / beta - t) <= 1e-4 * t:
            break
    evidence = T.log_evidence(alpha, beta, x, y_energy, sigma, n, d)
    assert math.isclose(evidence, T._max_log_evidence(x, y_energy, sigma, n, d), rel_tol=1e-12)
    direct = minimize(lambda p: -T.log_evidence(math.exp(p[0]), math.exp(p[1]), x, y_energy, sigma, n, d),
                      [math.log(alpha), math.log(beta)], method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12})
    return {"evidence": evidence, "gamma": gamma, "log_t": math.log10(alpha / beta), "iterations": iterations,
            "gap": -direct.fun - evidence, "original": evidence + (d - len(sigma)) / 2 * math.log(alpha) / n}


def analyse(f: np.ndarray, y: np.ndarray) -> dict:
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > 1e-10 * s.max()
    u, sigma = u[:, keep], s[keep] ** 2
    rows = [fixed_point(u.T @ (y == c).astype(np.float64), float((y == c).sum()), sigma, n, d) for c in np.unique(y)]
    out = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    out.update(iterations=max(r["iterations"] for r in rows), gap=max(r["gap"] for r in rows),
               floor=float(np.mean([0.5 * math.log(n / (y == c).sum()) - 0.5 - 0.5 * math.log(2 * math.pi)
                                    for c in np.unique(y)])),
               top=float(sigma[0] / sigma.sum()), norm=float(np.linalg.norm(f, axis=1).mean()), n=n, d=d)
    return out


def probe(train: tuple, test: tuple) -> float:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(train[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegressionCV(Cs=6, cv=3, max_iter=300).fit(scale.transform(train[0]), train[1])
    return float((model.predict(scale.transform(test[0])) == test[1]).mean())


def main() -> None:
    import torch
    from scipy.stats import kendalltau

    from zoo_core.recipe import recipe_from_dict
    from zoo_core.train import Engine

    parser = options(__doc__)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "zoo-bench" / "rank", help="bench/rank.py's --cache: its full run's candidates (default "
                        "%(default)s; missing ones are trained there)")
    parser.add_argument("--target", default="cifar", choices=["mnist", "cifar", "pneumonia"])
    parser.add_argument("--k", default="10,32,100", help="labels a class, comma-separated")
    args = parser.parse_args()
    require_shared_data()
    set_threads()
    cache, ks = args.cache / "full", [int(k) for k in args.k.split(",")]
    sets = rs.image_halves(cache, 2000, 1000)
    bases = rs.image_candidates(sets, cache, False, lambda message: None)

    def features(base: str, k: int, seed: int):
        data = rs.image_data(sets[args.target]["target"], labels_per_class=k, limit={"val": 100})
        recipe = recipe_from_dict({"base": base, "strategy": "finetune", "data": data,
                                   "train": {"seed": seed, "epochs": 1}}, source="(rank_logme)")
        engine = Engine(recipe, progress=False)
        split = engine.data.train
        return engine, (engine.features(split).numpy().astype(np.float64), np.asarray(split.labels))

    print(f"target {args.target}: LogME (mean of 3 labelled draws, sd) vs the floor; gamma, log10(alpha/beta), "
          "iterations and gap to the direct maximum (draw 0); the original code's value; top singular share; "
          "mean feature norm; linear probe accuracy (draw 0)")
    logme, probes = {k: {} for k in ks}, {k: {} for k in ks}
    with torch.no_grad():
        for name, base in bases.items():
            test = None
            for k in ks:
                start, found = time.perf_counter(), []
                for seed in range(3):
                    engine, train = features(base, k, seed)
                    found.append(analyse(*train))
                    if seed == 0:
                        test = test or (engine.features(engine.data.test).numpy().astype(np.float64),
                                        np.asarray(engine.data.test.labels))
                        probes[k][name] = probe(train, test)
                values, a = [r["evidence"] for r in found], found[0]
                logme[k][name] = float(np.mean(values))
                original = np.mean([r["original"] for r in found])
                print(f"{name:16} k={k:3} n={a['n']:4} d={a['d']:4}  LogME {logme[k][name]:+.4f} "
                      f"(sd {np.std(values):.4f}) floor {a['floor']:+.4f}  gamma {a['gamma']:5.1f}  "
                      f"log10 a/b {a['log_t']:+5.2f}  it {a['iterations']:3} gap {a['gap']:.1e}  "
                      f"original {original:+7.3f}  top {a['top']:.3f} norm {a['norm']:6.1f}  "
                      f"probe {probes[k][name]:.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    names, last = list(bases), ks[-1]

    def tau(a: dict, b: dict) -> float:
        return float(kendalltau([a[n] for n in names], [b[n] for n in names]).statistic)

    for k in ks:
        print(f"k={k:3}: tau(LogME, LogME at k={last}) {tau(logme[k], logme[last]):+.3f}  "
              f"tau(LogME, probe at k={k}) {tau(logme[k], probes[k]):+.3f}  "
              f"LogME range {max(logme[k].values()) - min(logme[k].values()):.3f}")


if __name__ == "__main__":
    main()
