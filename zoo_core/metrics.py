"""Classification metrics: accuracy, macro-F1, and AUROC for two classes (scikit-learn's definitions)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> dict[str, float]:
    predictions = probabilities.argmax(1)
    result = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", labels=list(range(num_classes)),
                                   zero_division=0)),
    }
    if num_classes == 2 and len(np.unique(labels)) == 2:
        result["auroc"] = float(roc_auc_score(labels, probabilities[:, 1]))
    return result
