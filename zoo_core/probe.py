"""A linear probe fitted to convergence: multinomial logistic regression on cached features.

The objective is scikit-learn's `LogisticRegression` (lbfgs, multinomial), so the inverse L2 strength `C` means
what it means there: minimise ``sum_i w_i * CE_i + ||W||^2 / (2C)`` (the bias is not penalised). It is solved
full-batch with L-BFGS in float64 (SciPy's, as scikit-learn does), from zero, which is also the minimum-norm
choice for directions the training features do not span. `C` is chosen by stratified k-fold cross-validation on
the training split, by held-out accuracy as scikit-learn's `LogisticRegressionCV` scores it (ties go to the
stronger penalty), then the probe is refitted on all of it. On a cache of a few thousand examples the whole search
takes seconds.

Why accuracy and not held-out log-loss (the rule before): the log-loss rewards calibrated, near-uniform
probabilities, and on ten classes with weak features (CIFAR-10 from the MNIST-chain ResNet-18, 32 labels a class)
it chose C = 3e-3, where the boundary is hardly fitted: macro-F1 0.214 against the plain scikit-learn probe's
0.228 on the very same features; chosen by held-out accuracy, 0.245 (bench/fewshot.py, README "Defaults").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 17))  # half-decades, as wide as LogisticRegressionCV's Cs=10


@dataclass
class ProbeFit:
    weight: torch.Tensor  # classes x features
    bias: torch.Tensor
    C: float
    loss: float  # mean (weighted) training cross-entropy, without the penalty
    iterations: int
    cv: dict[str, float] = field(default_factory=dict)  # C -> held-out log-loss, when cross-validated
    cv_accuracy: dict[str, float] = field(default_factory=dict)  # C -> held-out accuracy (what chooses C)
    folds: int = 0


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """scikit-learn's 'balanced': n / (classes * n_c); absent classes get 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.from_numpy(weights)


def log_loss(x: torch.Tensor, y: torch.Tensor, fit: ProbeFit, weights: torch.Tensor | None = None) -> float:
    logits = x.double().numpy() @ fit.weight.numpy().T + fit.bias.numpy()
    logits -= logits.max(1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    labels = y.numpy()
    sample_w = weights.numpy()[labels] if weights is not None else np.ones(len(labels))
    return float(-(sample_w * log_p[np.arange(len(labels)), labels]).sum() / sample_w.sum())


def accuracy(x: torch.Tensor, y: torch.Tensor, fit: ProbeFit, weights: torch.Tensor | None = None) -> float:
    """The share of examples whose argmax is right (weighted by class: balanced accuracy with balanced weights)."""
    right = ((x.double() @ fit.weight.T + fit.bias).argmax(1) == y).double().numpy()
    sample_w = weights.numpy()[y.numpy()] if weights is not None else np.ones(len(right))
    return float((sample_w * right).sum() / sample_w.sum())


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, C: float,
                 weights: torch.Tensor | None = None, init: tuple[torch.Tensor, torch.Tensor] | None = None,
                 max_iter: int = 1000) -> ProbeFit:
    """Minimise the weighted cross-entropy plus ||W||^2 / (2C), scaled by 1/n for conditioning. SciPy's L-BFGS
    on an exact gradient (what scikit-learn runs): on a few hundred examples a fit takes milliseconds, where
    torch.optim.LBFGS pays autograd's per-call overhead on every line-search step."""
    from scipy.optimize import minimize

    xs, labels, n, d = x.double().numpy(), y.numpy(), len(x), x.shape[1]
    sample_w = weights.double().numpy()[labels] if weights is not None else np.ones(n)
    onehot = np.eye(num_classes)[labels]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weight, bias = theta[:-num_classes].reshape(num_classes, d), theta[-num_classes:]
        logits = xs @ weight.T + bias
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        loss = -(sample_w * (onehot * log_p).sum(1)).sum() + (weight**2).sum() / (2 * C)
        residual = (np.exp(log_p) - onehot) * sample_w[:, None]
        grad = np.concatenate([(residual.T @ xs + weight / C).ravel(), residual.sum(0)])
        return loss / n, grad / n

    theta = np.zeros(num_classes * (d + 1)) if init is None else \
        np.concatenate([init[0].numpy().ravel(), init[1].numpy()])
    result = minimize(objective, theta, jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "gtol": 1e-7, "ftol": 1e-12})
    weight = torch.from_numpy(result.x[:-num_classes].reshape(num_classes, d).copy())
    bias = torch.from_numpy(result.x[-num_classes:].copy())
    penalty = float((result.x[:-num_classes] ** 2).sum()) / (2 * C * n)
    return ProbeFit(weight, bias, C, float((result.fun - penalty) * n / sample_w.sum()), int(result.nit))


def fit_probe(*args, **kwargs) -> ProbeFit:
    """Fit on all of (x, labels); with `C` None, choose it from `grid` by stratified k-fold CV first. BLAS runs
    on one thread: these problems are small, and more threads only contend (10x slower on a busy 2-core box)."""
    # imported before the limit: threadpoolctl limits only the BLAS libraries already loaded, and SciPy brings its
    # own OpenBLAS, which ran a process's first fit on every core (CIFAR-10 on EfficientNet-Lite0 features, 32 a
    # class: 34 s of CPU for that fit, 2 s for each later one; bench/fewshot.py's first probe of a run)
    import scipy.optimize  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit_probe(*args, **kwargs)


def _fit_probe(x: torch.Tensor, labels: np.ndarray, num_classes: int, C: float | None = None, folds: int = 5,
               balanced: bool = False, seed: int = 0, grid: tuple[float, ...] = C_GRID,
               score: str = "accuracy") -> ProbeFit:
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    weights = class_weights(labels, num_classes) if balanced else None
    if C is not None:
        return fit_logistic(x, y, num_classes, C, weights)
    counts = np.bincount(labels, minlength=num_classes)
    k = min(folds, int(counts[counts > 0].min()))
    if k < 2:  # a class with one example: nothing to hold out, keep scikit-learn's default
        fit = fit_logistic(x, y, num_classes, 1.0, weights)
        fit.folds = 0
        return fit
    from sklearn.model_selection import StratifiedKFold

    ordered = sorted(grid)
    losses, hits = np.zeros((k, len(grid))), np.zeros((k, len(grid)))
    splits = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), labels)
    for f, (train_idx, test_idx) in enumerate(splits):
        tr, te = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
        init = None
        for i, c in enumerate(ordered):  # strong to weak penalty, each warm-started from the last
            fit = fit_logistic(x[tr], y[tr], num_classes, c, weights, init=init)
            init = (fit.weight, fit.bias)
            losses[f, i] = log_loss(x[te], y[te], fit, weights)
            hits[f, i] = accuracy(x[te], y[te], fit, weights)
    best = ordered[choose(losses, hits, score)]
    fit = fit_logistic(x, y, num_classes, best, weights)
    fit.cv = {f"{c:.4g}": round(float(s), 5) for c, s in zip(ordered, losses.mean(0), strict=True)}
    fit.cv_accuracy = {f"{c:.4g}": round(float(s), 5) for c, s in zip(ordered, hits.mean(0), strict=True)}
    fit.folds = k
    return fit


def choose(losses: np.ndarray, hits: np.ndarray, score: str) -> int:
    """The chosen position in the grid (ordered from strong to weak penalty), from folds x grid held-out scores.

    accuracy: the highest mean held-out accuracy; among equals the first, the strongest penalty (scikit-learn's
    choice too): within a tie, the simpler model.
    log_loss (recipes before defaults version 3): glmnet's lambda.1se, the strongest penalty whose held-out loss is
    within one standard error of the best: on a few separable examples the loss keeps falling as C grows and its
    minimum sits at the weakest penalty, overconfident on new data."""
    if score == "accuracy":
        held_out = hits.mean(0)
        return int(np.flatnonzero(held_out >= held_out.max() - 1e-9)[0])
    if score != "log_loss":
        raise ValueError(f"score '{score}' is not accuracy or log_loss")
    held_out = losses.mean(0)
    top = int(np.argmin(held_out))
    bound = held_out[top] + losses[:, top].std(ddof=1) / np.sqrt(len(losses))
    return int(np.flatnonzero(held_out <= bound)[0])


def probe_head(features: torch.Tensor, labels: np.ndarray, num_classes: int, seed: int = 0,
               balanced: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """LP-FT's start (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"): a new head's weight and
    bias from the linear probe on the base's features, so fine-tuning starts from a fitted head instead of a random
    one, whose large early gradients distort the features. The probe is the linear-probe strategy's (standardised
    features, C by cross-validated held-out accuracy); the standardisation is folded into the weights, so the head
    reads raw features: `weight @ x + bias` equals the probe's output on the standardised x."""
    from zoo_core.backbone import Head

    scaler = Head(features.shape[1], num_classes, standardize=True)
    scaler.set_statistics(features)
    fit = fit_probe(scaler.standardized(features), labels, num_classes, folds=5, seed=seed, balanced=balanced,
                    score="accuracy")
    weight = fit.weight / scaler.std.double()  # a dead feature's infinite spread gives it weight 0
    bias = fit.bias - weight @ scaler.mean.double()
    return weight.float(), bias.float(), {"rule": "linear probe on the base's features (LP-FT)", "C": fit.C,
                                          "folds": fit.folds, "train_loss": round(fit.loss, 5)}
