"""Published transferability scores that `zoo rank` does not offer, for bench/rank.py's `--published` comparison:
would a more recent score have met issue 14's goal (mean Kendall tau >= 0.7) where LogME, LEEP, NCE, H-score and
ridge do not? Each follows its authors' reference implementation and settings, fixed before it was run here (none
tuned on these targets). Higher is better for every one. They read the same features `zoo rank` scores (the
candidate's own preprocessing, the few-label training split).

- SFDA (Shao et al., ECCV 2022; github.com/TencentARC/SFDA, metrics.py): regularised Fisher discriminant analysis,
  its shrinkage exp(-5 x the within-class scatter's largest eigenvalue); a second pass after the "ConfMix"
  self-challenge moves each example toward the other classes' mean by how unsure the first pass was of it; the
  score is the mean probability of the true class under the second pass. With fewer labelled examples than feature
  dimensions (every target here: 64-320 examples, 384-1,280 dimensions) the discriminant separates the training
  examples perfectly and the score saturates at 1.0 for most candidates.
- GBC (Pandy et al., CVPR 2022): minus the sum over ordered class pairs of the Bhattacharyya coefficient between
  per-class diagonal Gaussians, on the features reduced by PCA to 64 dimensions.
- TransRate (Huang et al., ICML 2022; its released code): the coding rate of the centred features minus the mean
  coding rate of each class's, R(Z) = 1/2 log det(I + Z^T Z / (n eps)), eps = 1e-4.
- PARC (Bolya et al., NeurIPS 2021; as SFDA's metrics.py runs it): the Spearman correlation between the features'
  and the one-hot labels' dissimilarity matrices (1 - Pearson correlation between examples), on the features reduced
  by PCA to 32 dimensions and standardised.
"""

from __future__ import annotations

import numpy as np

PUBLISHED = {"sfda": "SFDA", "gbc": "GBC", "transrate": "TransRate", "parc": "PARC"}


def scores(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every published score of `features` (N x D) for integer `labels` (N)."""
    f, y = np.asarray(features, dtype=np.float64), np.unique(np.asarray(labels), return_inverse=True)[1]
    return {"sfda": sfda(f, y), "gbc": gbc(f, y), "transrate": transrate(f, y), "parc": parc(f, y)}


# -- SFDA ------------------------------------------------------------------------------------------------------
def _shrink(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    """`cov` shrunk toward its mean variance times the identity."""
    d = cov.shape[0]
    shrunk = (1.0 - shrinkage) * cov
    shrunk.flat[:: d + 1] += shrinkage * np.trace(cov) / d
    return shrunk


def _largest_eigenvalue(a: np.ndarray, steps: int = 3) -> float:
    """The reference's power iteration (3 steps from the row sums)."""
    x = a.sum(1)
    for _ in range(steps):
        y = a @ x
        y /= np.linalg.norm(y)
        x = a @ y
        x /= np.linalg.norm(x)
    return float(x @ a @ y)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def _fisher_probabilities(f: np.ndarray, y: np.ndarray, shrinkage: float | None) -> tuple[np.ndarray, float]:
    from scipy import linalg

    classes = y.max() + 1
    priors = np.bincount(y) / len(y)
    means = np.stack([f[y == c].mean(0) for c in range(classes)])
    within = sum(priors[c] * np.atleast_2d(np.cov(f[y == c].T, bias=True)) for c in range(classes))
    if shrinkage is None:
        shrinkage = max(float(np.exp(-5 * _largest_eigenvalue(within))), 1e-10)
    shrunk_within = _shrink(within, shrinkage)
    between = _shrink(np.atleast_2d(np.cov(f.T, bias=True)), shrinkage) - shrunk_within
    values, vectors = linalg.eigh(between, shrunk_within)
    vectors = vectors[:, np.argsort(values)[::-1]]
    coef = means @ vectors @ vectors.T
    intercept = -0.5 * np.einsum("cd,cd->c", means, coef) + np.log(priors)
    return _softmax(f @ coef.T + intercept), shrinkage


def sfda(f: np.ndarray, y: np.ndarray) -> float:
    classes = y.max() + 1
    probs, shrinkage = _fisher_probabilities(f, y, None)
    probs = _softmax(probs)  # the reference softens the probabilities once more before the mixture
    means = np.stack([f[y == c].mean(0) for c in range(classes)])
    others = (means.sum(0) - means) / (classes - 1)  # each class's "outer" mean: the other classes' means
    sure = probs[np.arange(len(y)), y][:, None]
    mixed = sure * f + (1 - sure) * others[y]
    probs, _ = _fisher_probabilities(mixed, y, shrinkage)
    return float(probs[np.arange(len(y)), y].mean())


# -- GBC, TransRate, PARC --------------------------------------------------------------------------------------
def _pca(f: np.ndarray, dims: int) -> np.ndarray:
    centred = f - f.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dims].T


def gbc(f: np.ndarray, y: np.ndarray, dims: int = 64) -> float:
    z = _pca(f, dims)
    # a floor under each class's variances: a direction constant within a class (a dead unit, a few examples)
    # would make its Bhattacharyya distance infinite
    floor = 1e-6 * float(z.var(0).mean()) + 1e-12
    stats = [(z[y == c].mean(0), z[y == c].var(0) + floor) for c in range(y.max() + 1)]
    total = 0.0
    for i, (m1, v1) in enumerate(stats):
        for j, (m2, v2) in enumerate(stats):
            if i != j:
                v = (v1 + v2) / 2
                distance = (((m1 - m2) ** 2 / v).sum() / 8
                            + (np.log(v).sum() - (np.log(v1).sum() + np.log(v2).sum()) / 2) / 2)
                total += np.exp(-distance)
    return -float(total)


def _coding_rate(z: np.ndarray, eps: float) -> float:
    n = len(z)
    gram = z @ z.T if n < z.shape[1] else z.T @ z  # the same nonzero eigenvalues: the smaller matrix
    return 0.5 * float(np.linalg.slogdet(np.eye(len(gram)) + gram / (n * eps))[1])


def transrate(f: np.ndarray, y: np.ndarray, eps: float = 1e-4) -> float:
    z = f - f.mean(0)
    classes = y.max() + 1
    return _coding_rate(z, eps) - sum(_coding_rate(z[y == c], eps) for c in range(classes)) / classes


def parc(f: np.ndarray, y: np.ndarray, dims: int = 32) -> float:
    from scipy.stats import spearmanr

    z = _pca(f, dims)
    z = (z - z.mean(0)) / np.maximum(z.std(0), 1e-12)
    upper = np.triu_indices(len(y), 1)
    features = (1 - np.corrcoef(z))[upper]
    labels = (1 - np.corrcoef(np.eye(y.max() + 1)[y]))[upper]
    return float(spearmanr(features, labels).statistic)
