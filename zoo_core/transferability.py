"""`zoo rank`: which base will transfer best to *your* labels, scored from frozen features, with no fine-tuning.

Each candidate's backbone embeds the labelled training examples once (the engine's own data preparation and the
candidate's own preprocessing); the scores then take milliseconds. Higher is better for every score:

- LogME (You et al., ICML 2021): the log marginal evidence of a Bayesian linear model from the features to each
  one-hot label column, maximised over its prior and noise precisions, per example, averaged over classes.
- H-score (Bao et al., ICIP 2019): tr(cov(f)^-1 cov(E[f|y])), how far apart the class means are in units of the
  feature covariance. With few labels cov(f) is singular, so it is shrunk (Ledoit-Wolf), as in the regularised
  H-score of Ibrahim et al. (ICLR 2023).
- LEEP (Nguyen et al., ICML 2020): the average log-likelihood of the labels under the "expected empirical
  predictor" built on the candidate's own source classifier; only candidates that keep one (zoo checkpoints'
  trained heads; timm's and torchvision's ImageNet classifiers).
- NCE (Tran et al., ICCV 2019): -H(Y|Z), Z the source classifier's hard predictions; same candidates as LEEP.
- ridge: the leave-one-out accuracy of a linear probe on the features, a ridge regression to the one-hot labels
  (with an intercept) whose penalty is chosen by its leave-one-out squared error; every fold in closed form from one
  SVD (the efficient leave-one-out of Rifkin & Lippert 2007, scikit-learn's RidgeClassifierCV). It estimates
  directly what a linear head on these features would reach, where LogME's evidence penalises a feature dimension
  far above the number of labels.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core.errors import ZooError

# each score's name as tables head it
SCORE_LABELS = {"logme": "LogME", "hscore": "H-score", "leep": "LEEP", "nce": "NCE", "ridge": "ridge"}
SCORES = tuple(SCORE_LABELS)
# ridge penalties tried, relative to the mean nonzero eigenvalue of the centred features' Gram matrix
RIDGE_PENALTIES = np.logspace(-3, 3, 13)


# -- the scores ------------------------------------------------------------------------------------------------
def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of `features` (N x D) for integer `labels` (N): mean over classes of the maximised log evidence / N."""
    f = np.asarray(features, dtype=np.float64)
    y_all = np.asarray(labels)
    n, d = f.shape
    u, sigma = _nonzero_eigen(f)
    evidences = [_max_log_evidence(u.T @ (y_all == c).astype(np.float64), float((y_all == c).sum()), sigma, n, d)
                 for c in np.unique(y_all)]
    return float(np.mean(evidences))


def _nonzero_eigen(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """U and the eigenvalues s^2 of F^T F that are not zero, from the thin SVD F = U S V^T."""
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > 1e-10 * max(float(s.max(initial=0.0)), 1e-300)
    return u[:, keep], s[keep] ** 2


def _max_log_evidence(x: np.ndarray, y_energy: float, sigma: np.ndarray, n: int, d: int) -> float:
    """Maximise the evidence of y = F w + noise, w ~ N(0, I/alpha), noise ~ N(0, I/beta) (Bishop, PRML 3.5.2) by
    MacKay's fixed-point updates, in the eigenbasis of F^T F: `x` = U^T y, `y_energy` = |y|^2."""
    x2 = x ** 2
    alpha, beta = 1.0, 1.0
    for _ in range(100):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())  # effective number of parameters
        m2, res2 = _fit(t, x2, y_energy, sigma)
        alpha = gamma / max(m2, 1e-12)
        beta = max(n - gamma, 1e-12) / max(res2, 1e-12)
        if abs(alpha / beta - t) <= 1e-4 * t:
            break
    return log_evidence(alpha, beta, x, y_energy, sigma, n, d)


def _fit(t: float, x2: np.ndarray, y_energy: float, sigma: np.ndarray) -> tuple[float, float]:
    """|m|^2 and |y - F m|^2 for the posterior mean m at alpha / beta = t."""
    outside = max(y_energy - float(x2.sum()), 0.0)  # the part of y no feature can explain
    m2 = float((sigma * x2 / (sigma + t) ** 2).sum())
    res2 = float((x2 * (t / (sigma + t)) ** 2).sum()) + outside
    return m2, res2


def log_evidence(alpha: float, beta: float, x: np.ndarray, y_energy: float, sigma: np.ndarray, n: int,
                 d: int) -> float:
    """ln p(y | alpha, beta) / N (PRML 3.86), from the eigenvalues `sigma` of F^T F and `x` = U^T y."""
    m2, res2 = _fit(alpha / beta, x ** 2, y_energy, sigma)
    # ln|A|, A = alpha I + beta F^T F: eigenvalues alpha + beta sigma, and alpha for the D - k null directions
    log_det = float(np.log(alpha + beta * sigma).sum()) + (d - len(sigma)) * math.log(alpha)
    evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - beta / 2 * res2 - alpha / 2 * m2
                - log_det / 2 - n / 2 * math.log(2 * math.pi))
    return evidence / n


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """tr(cov(f)^-1 cov(E[f|y])) with cov(f) shrunk by Ledoit-Wolf."""
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(0)
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    means = np.stack([f[y == c].mean(0) for c in classes])  # C x D
    solved = np.linalg.solve(ledoit_wolf(f), means.T)  # D x C
    return float(((counts / len(y)) * np.einsum("cd,dc->c", means, solved)).sum())


def ridge_loo(features: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out accuracy of a ridge classifier (one-hot targets, intercept) at the penalty among
    `RIDGE_PENALTIES` with the lowest leave-one-out squared error."""
    f = np.asarray(features, dtype=np.float64)
    classes, index = np.unique(np.asarray(labels), return_inverse=True)
    targets = np.eye(len(classes))[index]  # N x C
    n = len(index)
    # the intercept, fitted apart: the hat matrix is 11^T / N + U diag(s^2 / (s^2 + l)) U^T
    u, sigma = _nonzero_eigen(f - f.mean(0))
    centred = targets - targets.mean(0)
    projected = u.T @ centred  # k x C
    scale = float(sigma.mean()) if len(sigma) else 1.0
    best = (math.inf, 0.0)
    for penalty in RIDGE_PENALTIES * scale:
        shrink = sigma / (sigma + penalty)
        residual = centred - u @ (shrink[:, None] * projected)  # targets minus the fit
        leverage = (u ** 2) @ shrink + 1.0 / n
        left_out = residual / np.maximum(1.0 - leverage, 1e-12)[:, None]  # each example's residual unseen
        error = float((left_out ** 2).sum())
        accuracy = float(((targets - left_out).argmax(1) == index).mean())
        best = min(best, (error, -accuracy))
    return -best[1]


def ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """The Ledoit-Wolf shrunk covariance of centred `x` (N x D): scikit-learn's `ledoit_wolf` (Ledoit & Wolf 2004),
    whose import alone cost a ranking 1.2 s; the tests hold the two equal."""
    n, d = x.shape
    if d == 1:
        return np.atleast_2d((x ** 2).mean())
    x2 = x ** 2
    variances = x2.sum(0) / n
    mu = variances.sum() / d
    beta_ = float((x2.T @ x2).sum())  # sum of the coefficients of <X2.T, X2>
    delta_ = float(((x.T @ x) ** 2).sum()) / n ** 2  # sum of the squared coefficients of <X.T, X>
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * variances.sum() + d * mu ** 2) / d
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    cov = x.T @ x / n
    shrunk = (1.0 - shrinkage) * cov
    shrunk.flat[:: d + 1] += shrinkage * np.trace(cov) / d
    return shrunk


def _joint(source_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(y, z) from soft source predictions, and the target classes in order."""
    classes = np.unique(labels)
    joint = np.stack([source_probs[labels == c].sum(0) for c in classes]) / len(labels)
    return joint, classes


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean log of sum_z P(y_i | z) theta_z(x_i), P(y | z) estimated from the same data."""
    theta = np.asarray(source_probs, dtype=np.float64)
    y = np.asarray(labels)
    joint, classes = _joint(theta, y)
    p_y_given_z = joint / np.maximum(joint.sum(0, keepdims=True), 1e-300)
    eep = theta @ p_y_given_z.T  # N x C
    index = np.searchsorted(classes, y)
    return float(np.log(np.maximum(eep[np.arange(len(y)), index], 1e-300)).mean())


def nce(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """-H(Y | Z) with Z the source classifier's argmax."""
    z = np.asarray(source_probs).argmax(1)
    y = np.asarray(labels)
    total = 0.0
    for value in np.unique(z):
        in_z = y[z == value]
        p_z = len(in_z) / len(y)
        _, counts = np.unique(in_z, return_counts=True)
        p = counts / len(in_z)
        total += p_z * float((p * np.log(p)).sum())
    return total


# -- ranking candidates ---------------------------------------------------------------------------------------
@dataclass
class Ranked:
    """One candidate's scores. `origin` is the exact weights used; `parents`/`metrics` come from the registry or
    the checkpoint when known; `error` says why a candidate could not be scored (it is then listed last)."""

    candidate: str
    origin: str | None = None
    backbone: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    examples: int = 0
    feature_dim: int = 0
    parents: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    fingerprint: str | None = None  # sha256 of the labelled examples scored (data_fingerprint)
    recorded: bool = False  # its scores were recorded in the registry (rank(record=...))
    # where its seconds went: {"registry"|"weights"|"data"|"model"|"encoder"|"encode"|"forward"|"scores":
    # {"wall": s, "cpu": s}} (registry: resolving and pulling a registry candidate);
    # what a ranking pays once (reading the data, importing a plugin) is counted in the first candidate needing it
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_data_section(path: str | Path) -> tuple[dict[str, Any], int]:
    """The `data:` section (and seed) of a recipe, or of a file holding only a data section (`reader:` at the top).
    Relative paths are resolved against the file, as for recipes."""
    import yaml

    from zoo_core.recipe import resolve_paths

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"data file '{path}' does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ZooError(f"data file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict) or not ("reader" in loaded or isinstance(loaded.get("data"), dict)):
        raise ZooError(f"data file '{path}' must be a recipe (with a data: section) or a data section "
                       "(reader:, args:, labels_per_class: ...)")
    recipe = loaded if "data" in loaded else {"data": loaded}
    resolve_paths(recipe, path.parent)
    seed = recipe.get("train", {}).get("seed", 0) if isinstance(recipe.get("train"), dict) else 0
    return recipe["data"], int(seed)


def _wildcard(candidate: str) -> bool:
    return any(ch in candidate for ch in "*?[")


def _registry_ref(candidate: str) -> bool:
    """`zoo:NS/NAME[@REV]`, or a bare `NS/NAME[@REV]` (no scheme before the revision)."""
    return candidate.startswith("zoo:") or (":" not in candidate.split("@")[0] and "/" in candidate)


def expand_candidates(candidates: Iterable[str], registry=None) -> list[str]:
    """Weight references as given, plus every registry model matching a wildcard (`acme/*`, as `zoo:NS/NAME`).
    A bare `NS/NAME[@REV]` is a registry reference."""
    out: list[str] = []
    for candidate in candidates:
        if _wildcard(candidate):
            ids = _registry_ids(registry)
            pattern = candidate.removeprefix("zoo:")
            matches = [f"zoo:{i}" for i in ids if fnmatch.fnmatchcase(i, pattern)]
            if not matches:
                raise ZooError(f"no registry model matches '{candidate}'"
                               + (f" (the registry has {len(ids)}: {', '.join(ids[:5])}...)" if ids else ""))
            out += matches
        elif _registry_ref(candidate):
            out.append(candidate if candidate.startswith("zoo:") else f"zoo:{candidate}")
        else:
            out.append(candidate)
    return list(dict.fromkeys(out))


def _registry_ids(registry) -> list[str]:
    ids, page = [], 1
    while True:
        found = registry.search(None, page=page, per_page=100)
        ids += [r["id"] for r in found["results"]]
        if len(ids) >= found["total"] or not found["results"]:
            return ids
        page += 1


def data_fingerprint(classes: Sequence[str], inputs, labels: np.ndarray) -> str:
    """sha256 of the labelled examples (class names, labels and the inputs' contents: image pixels or files,
    texts), so rankings recorded under one data set name can be told apart when the data differed."""
    import hashlib
    import json

    from zoo_core.registry.files import file_sha256

    digest = hashlib.sha256(json.dumps(list(classes)).encode())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    if isinstance(inputs, np.ndarray):
        digest.update(str(inputs.shape).encode() + np.ascontiguousarray(inputs).tobytes())
    else:
        for item in inputs:
            digest.update((file_sha256(item) if isinstance(item, Path) else str(item)).encode() + b"\0")
    return digest.hexdigest()


def rank(data: str | Path | dict[str, Any], candidates: Sequence[str], *, scores: Sequence[str] = SCORES,
         by: str = "logme", seed: int | None = None, registry=None, device: str = "cpu", batch_size: int = 64,
         record: str | None = None, log: Callable[[str], None] = lambda message: None) -> list[Ranked]:
    """Score every candidate on the labelled training split of `data` and return them best first (by `by`).

    Args:
        data: a recipe or data-section YAML file, or a data-section dict (reader, args, labels_per_class, ...).
        candidates: weight references (`torchvision:...`, `hf:...`, `file:...`, `scratch:...`), registry references
            (`ns/name@rev`, `zoo:ns/name`) or registry wildcards (`acme/*`).
        registry: a `Registry` (or URI) for registry candidates; default `ZOO_REGISTRY`.
        record: a data set name: each scored registry candidate's scores and place are recorded in the registry
            under it (shown on the model's page and by `resolve(ref).rankings`).
    """
    unknown = [s for s in (*scores, by) if s not in SCORES]
    if unknown:
        raise ZooError(f"unknown score '{unknown[0]}': choose from {', '.join(SCORES)}")
    if by not in scores:
        scores = (*scores, by)
    if isinstance(data, (str, Path)):
        data, file_seed = load_data_section(data)
        seed = file_seed if seed is None else seed
    seed = seed or 0
    needs_registry = any(_wildcard(c) or _registry_ref(c) for c in candidates)
    if record is not None:  # checked before minutes of scoring, not after
        from zoo_core.registry.rankings import DATASET

        if not DATASET.fullmatch(record):
            raise ZooError(f"--record: a data set name is 1-100 letters, digits, '.', '_' or '-', not {record!r}")
        if not needs_registry:
            raise ZooError("--record: no candidate is a registry model (only registry models can hold a ranking)")
    if needs_registry and (registry is None or isinstance(registry, (str, Path))):
        from zoo_core.client import open_registry

        registry = open_registry(registry)
    refs = expand_candidates(candidates, registry)
    if not refs:
        raise ZooError("no candidates: name weight references or registry models (e.g. 'acme/*')")
    from zoo_core.rank_features import FeatureCache

    cache = FeatureCache(data, seed, device=device, batch_size=batch_size)  # the data read once for all
    results = []
    for ref in refs:
        log(f"scoring {ref}")
        results.append(_score(ref, cache, scores, registry))
    missing = -math.inf
    results = sorted(results, key=lambda r: (r.error is None, r.scores.get(by, missing)), reverse=True)
    if record is not None:
        _record(results, record, by, registry, log)
    return results


def _record(results: list[Ranked], dataset: str, by: str, registry, log: Callable[[str], None]) -> None:
    """Record each scored registry candidate's scores under `dataset`; its rank is among the scored candidates."""
    scored = [r for r in results if r.error is None and by in r.scores]
    if not any(r.origin and r.origin.startswith("zoo:") for r in scored):
        raise ZooError("--record: no registry candidate was scored (only registry models can hold a ranking)")
    for place, r in enumerate(scored, 1):
        if r.origin and r.origin.startswith("zoo:"):
            registry.record_rank(r.origin[4:], dataset, r.fingerprint, by, r.scores, place, len(scored), r.examples)
            r.recorded = True
            log(f"recorded {r.origin[4:]}: #{place} of {len(scored)} for {dataset}")


def _score(ref: str, cache, scores: Sequence[str], registry) -> Ranked:
    import torch
    from threadpoolctl import threadpool_limits

    ranked = Ranked(candidate=ref)
    start = time.perf_counter()
    try:
        base, pulled = ref, None
        if ref.startswith("zoo:"):
            cpu = time.process_time()
            info = registry.resolve(ref[4:])
            ranked.parents = [p.get("ref") or "a private model" for p in info.parents]
            ranked.metrics = dict(info.metrics)
            base = f"file:{registry.pull(f'{info.model_id}@{info.number}')}"
            ranked.origin = f"zoo:{info.model_id}@{info.number}"
            pulled = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}
        # the data prepared exactly as a recipe with this base would (few-label subset, preprocessing)
        embedded = cache.embed(base)
        ranked.phases = {"registry": pulled, **embedded.phases} if pulled else embedded.phases
        features, labels, weights = embedded.features, embedded.labels, embedded.weights
        if len(np.unique(labels)) < 2:
            raise ZooError("the training split has fewer than two classes")
        ranked.origin = ranked.origin or (weights.origin if weights is not None else base)
        ranked.backbone, ranked.examples, ranked.feature_dim = embedded.spec.name, len(labels), features.shape[1]
        wall, cpu = time.perf_counter(), time.process_time()
        ranked.fingerprint = cache.fingerprint(embedded.classes, embedded.split)
        if weights is not None and weights.files is not None and not ranked.metrics:
            ranked.metrics = _checkpoint_metrics(weights.files)
        # numpy's BLAS gets torch's thread budget: its own default (every core) spins against the other
        # threads on a busy machine: one LogME SVD took 3-4 s instead of 0.14 s with 2 cores under load
        with threadpool_limits(torch.get_num_threads()):
            if "logme" in scores:
                ranked.scores["logme"] = logme(features, labels)
            if "hscore" in scores:
                ranked.scores["hscore"] = h_score(features, labels)
            if "ridge" in scores:
                ranked.scores["ridge"] = ridge_loo(features, labels)
        probs = _source_probabilities(weights, torch.from_numpy(features).float())
        if probs is not None:
            if "leep" in scores:
                ranked.scores["leep"] = leep(probs, labels)
            if "nce" in scores:
                ranked.scores["nce"] = nce(probs, labels)
        ranked.phases["scores"] = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    except ZooError as exc:
        ranked.error = str(exc)
    ranked.seconds = time.perf_counter() - start
    return ranked


def _checkpoint_metrics(folder: Path) -> dict[str, float]:
    import json

    try:
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))} if isinstance(metrics, dict) else {}


def _source_probabilities(weights, features) -> np.ndarray | None:
    """The candidate's own classifier on the features (LEEP, NCE), when it kept one that reads these features."""
    import torch

    from zoo_core.backbone import Head

    head_state = getattr(weights, "head_state", None) if weights is not None else None
    if not head_state or "linear.weight" not in head_state:
        return None
    out_features, in_features = head_state["linear.weight"].shape
    if in_features != features.shape[1]:
        return None  # the source head read other layers (a multi-layer probe)
    head = Head(in_features, out_features, standardize="mean" in head_state)
    head.load_state_dict(dict(head_state))
    head.eval()
    with torch.no_grad():
        return head(features).softmax(1).double().numpy()
