"""Classification metrics (scikit-learn's definitions): accuracy, balanced accuracy, macro-F1, AUROC for two
classes, and F1 per class. Few-label test splits are often imbalanced, where accuracy alone flatters a model that
predicts the majority class: balanced accuracy and the per-class F1 show it.

Computed here from a confusion matrix in numpy rather than with scikit-learn's functions (tests/test_fewshot.py
checks they agree): every training run needs them, and keeping scikit-learn and scipy (45 MB of wheels) off that
path lets the GPU check's wheelhouse leave them out and keeps `import zoo_core.train` a second faster. The linear
probe and `zoo rank` still use them."""

from __future__ import annotations

import numpy as np


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> dict[str, float]:
    """The flat metrics a checkpoint is registered, searched and sorted with."""
    predictions = probabilities.argmax(1)
    result = {
        "accuracy": float(np.mean(predictions == labels)),
        "balanced_accuracy": float(np.mean(_recalls(labels, predictions, num_classes))),
        "macro_f1": float(np.mean(f1_scores(labels, predictions, num_classes))),
    }
    if num_classes == 2 and len(np.unique(labels)) == 2:
        result["auroc"] = roc_auc(labels, probabilities[:, 1])
    return result


def per_class_f1(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict[str, float]:
    """F1 of each class, by name (kept beside the flat metrics: class names would crowd the registry's metric
    names)."""
    scores = f1_scores(labels, probabilities.argmax(1), len(classes))
    return {name: float(score) for name, score in zip(classes, scores, strict=True)}


def f1_scores(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """F1 of each class 0..num_classes-1; 0 for a class neither labelled nor predicted (scikit-learn's
    zero_division=0)."""
    confusion = np.bincount(np.asarray(labels) * num_classes + np.asarray(predictions),
                            minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    true_positives = np.diag(confusion).astype(float)
    denominator = confusion.sum(0) + confusion.sum(1)  # 2tp + fp + fn
    return np.divide(2 * true_positives, denominator, out=np.zeros(num_classes), where=denominator > 0)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve for labels 0/1: the Mann-Whitney statistic, tied scores counting one half."""
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2)[inverse]  # the mean 1-based rank of each group of tied scores
    positives = int((labels == 1).sum())
    negatives = len(labels) - positives
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _recalls(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> list[float]:
    """Recall of each class present in `labels`: balanced accuracy is their mean, as scikit-learn's (whose
    function warns when a prediction names a class the labels lack)."""
    present = [c for c in range(num_classes) if (labels == c).any()]
    return [float((predictions[labels == c] == c).mean()) for c in present]


def choose_threshold(labels: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """The decision threshold on P(class 1) that maximises macro-F1 on these (validation) examples, and that
    F1. Candidates lie midway between consecutive distinct probabilities; among equals, the one nearest 0.5
    (argmax's own threshold) wins, so a saturated validation split leaves the decision as it was."""
    values = np.unique(positive)
    candidates = np.concatenate([[0.5], (values[1:] + values[:-1]) / 2]) if len(values) > 1 else np.array([0.5])
    candidates = np.clip(candidates, 1e-6, 1 - 1e-6)
    scores = [float(np.mean(f1_scores(labels, (positive > t).astype(int), 2))) for t in candidates]
    best = max(scores)
    chosen = min((t for t, s in zip(candidates, scores, strict=True) if s >= best - 1e-12), key=lambda t: abs(t - 0.5))
    return float(chosen), float(best)
