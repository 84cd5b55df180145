"""Classification metrics with their semantics in their names (``macro_f1``, never a bare ``f1``)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Macro-F1, accuracy, per-class precision/recall/F1/support and the confusion matrix.

    ``labels`` fixes the class order (the task's label names); the confusion matrix is a list of rows, row =
    true label, column = predicted label, both in ``labels`` order.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    label_list = list(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=label_list, average=None, zero_division=0
    )
    return {
        "macro_f1": float(f1_score(y_true, y_pred, labels=label_list, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "n": len(y_true),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_list, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": {
            "labels": label_list,
            "matrix": confusion_matrix(y_true, y_pred, labels=label_list).astype(int).tolist(),
        },
    }


def expected_calibration_error(proba: np.ndarray, y_true_idx: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): confidence = max class probability, n_bins equal-width bins
    (low, high] over [0, 1]; ECE = Σ_bins (share of texts in the bin) × |accuracy − mean confidence| in the
    bin. proba: float (n, k) rows summing to 1; y_true_idx: int (n,). 0 = perfectly calibrated."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true_idx).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
