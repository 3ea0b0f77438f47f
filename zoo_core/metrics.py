"""Classification metrics (scikit-learn's definitions): accuracy, balanced accuracy, macro-F1, AUROC for two
classes, and F1 per class. Few-label test splits are often imbalanced, where accuracy alone flatters a model that
predicts the majority class: balanced accuracy and the per-class F1 show it."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> dict[str, float]:
    """The flat metrics a checkpoint is registered, searched and sorted with."""
    predictions = probabilities.argmax(1)
    result = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "balanced_accuracy": float(np.mean(_recalls(labels, predictions, num_classes))),
        "macro_f1": float(f1_score(labels, predictions, average="macro", labels=list(range(num_classes)),
                                   zero_division=0)),
    }
    if num_classes == 2 and len(np.unique(labels)) == 2:
        result["auroc"] = float(roc_auc_score(labels, probabilities[:, 1]))
    return result


def per_class_f1(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict[str, float]:
    """F1 of each class, by name (kept beside the flat metrics: class names would crowd the registry's metric
    names)."""
    scores = f1_score(labels, probabilities.argmax(1), average=None, labels=list(range(len(classes))),
                      zero_division=0)
    return {name: float(score) for name, score in zip(classes, scores, strict=True)}


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
    scores = [f1_score(labels, (positive > t).astype(int), average="macro", labels=[0, 1], zero_division=0)
              for t in candidates]
    best = max(scores)
    chosen = min((t for t, s in zip(candidates, scores, strict=True) if s >= best - 1e-12), key=lambda t: abs(t - 0.5))
    return float(chosen), float(best)
