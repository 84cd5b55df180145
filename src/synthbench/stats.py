"""Uncertainty of test metrics: across training seeds (mean ± std, t-interval) and between two conditions on the
same test set (paired bootstrap). Pure functions of arrays/lists, shared by evaluate, analyze and the pilot."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

METRICS = ("macro_f1", "accuracy")


def seed_summary(
    values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Mean, sample std (ddof=1) and the two-sided ``confidence`` interval of the mean from Student's t with
    n−1 degrees of freedom, over one value per seed; the interval is clipped to ``bounds`` (e.g. (0, 1) for a
    score) when given. With a single value std and the interval are None (one run has no spread)."""
    from scipy import stats

    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("seed_summary needs at least one value")
    mean = float(array.mean())
    if array.size < 2:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None, "n": 1}
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=array.size - 1)) * std / np.sqrt(array.size)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "std": std, "ci_low": float(low), "ci_high": float(high), "n": int(array.size)}


def _encode(*columns: Sequence[str]) -> tuple[list[np.ndarray], int]:
    names = sorted({str(v) for column in columns for v in column})
    index = {name: i for i, name in enumerate(names)}
    return [np.array([index[str(v)] for v in column], dtype=np.int64) for column in columns], len(names)


def _weighted_scores(
    weights: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, metric: str
) -> np.ndarray:
    """Metric of each resample. weights: (B, n) counts of how often each test example is drawn (a row of ones
    is the test set itself). Macro-F1 averages the classes that occur in the resample's truth or predictions
    (as sklearn's f1_score(average="macro") does), each F1 = 2·TP / (2·TP + FP + FN)."""
    correct = (y_true == y_pred).astype(float)
    total = weights.sum(axis=1)
    if metric == "accuracy":
        return (weights @ correct) / total
    f1_sum = np.zeros(weights.shape[0])
    present = np.zeros(weights.shape[0])
    for c in range(n_classes):
        is_true = (y_true == c).astype(float)
        is_pred = (y_pred == c).astype(float)
        tp = weights @ (is_true * correct)
        fn = weights @ is_true - tp
        fp = weights @ is_pred - tp
        denominator = 2 * tp + fp + fn
        occurs = denominator > 0
        f1_sum += np.where(occurs, 2 * tp / np.where(occurs, denominator, 1.0), 0.0)
        present += occurs
    return f1_sum / np.maximum(present, 1)


def metric_value(y_true: Sequence[str], y_pred: Sequence[str], metric: str = "macro_f1") -> float:
    """``macro_f1`` or ``accuracy`` of one prediction list (the same arithmetic the bootstrap uses)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    (truth, pred), n_classes = _encode(y_true, y_pred)
    return float(_weighted_scores(np.ones((1, len(truth))), truth, pred, n_classes, metric)[0])


def _resample_weights(n: int, n_resamples: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """Bootstrap draws of n examples with replacement, in chunks: (index of the chunk's first resample, (chunk,
    n) weights = how often each example is drawn). The chunk bounds the weight matrix to ~4M cells."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, 4_000_000 // max(n, 1)))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.integers(0, n, size=(size, n))
        flat = (draws + n * np.arange(size)[:, None]).ravel()
        yield start, np.bincount(flat, minlength=size * n).reshape(size, n).astype(float)


def bootstrap_interval(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    metric: str = "macro_f1",
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Percentile bootstrap interval of one system's ``metric`` on its test set (the resampling of
    :func:`paired_bootstrap`, one system). Returns ``value`` (on the full test set), ``ci_low``/``ci_high``
    (fractions, like the metric), ``n_resamples`` and ``n``. Deterministic for a given ``seed``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if len(y_true) != len(y_pred) or not y_true:
        raise ValueError("y_true and y_pred must be non-empty and of the same length")
    n = len(y_true)
    value = metric_value(y_true, y_pred, metric)
    scores = bootstrap_scores(y_true, {"system": y_pred}, metric, n_resamples, seed)["system"]
    alpha = 1 - confidence
    low, high = np.quantile(scores, [alpha / 2, 1 - alpha / 2])
    return {
        "value": value,
        "ci_low": float(low),
        "ci_high": float(high),
        "n_resamples": int(n_resamples),
        "n": int(n),
    }


def welch_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> tuple[float, float] | None:
    """Two-sided ``confidence`` interval of mean(a) − mean(b) over independent runs (one value per training
    seed of each condition), from Welch's t with Welch–Satterthwaite degrees of freedom; in the values' unit.
    None when either side has fewer than 2 values (one run has no spread)."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        return None
    diff = float(x.mean() - y.mean())
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = float(np.sqrt(vx + vy))
    if se == 0:  # identical scores on every seed: no spread to widen the point
        return diff, diff
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=df)) * se
    return diff - half, diff + half


def bootstrap_scores(
    y_true: Sequence[str],
    predictions: Mapping[str, Sequence[str]],
    metric: str = "macro_f1",
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``metric`` of every prediction list on the *same* ``n_resamples`` bootstrap draws of the rows (so any
    function of the scores keeps the pairing): name → float array (n_resamples,). Deterministic for ``seed``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    names = list(predictions)
    if not y_true or any(len(predictions[name]) != len(y_true) for name in names):
        raise ValueError("y_true and every prediction list must be non-empty and of the same length")
    (truth, *encoded), n_classes = _encode(y_true, *(predictions[name] for name in names))
    scores = {name: np.empty(n_resamples) for name in names}
    for start, weights in _resample_weights(len(truth), n_resamples, seed):
        for name, pred in zip(names, encoded, strict=True):
            scores[name][start : start + len(weights)] = _weighted_scores(
                weights, truth, pred, n_classes, metric
            )
    return scores


def paired_bootstrap(
    y_true: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    metric: str = "macro_f1",
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Paired bootstrap of ``metric(a) − metric(b)`` on one test set (Efron & Tibshirani 1993; Koehn 2004).

    Each resample draws n test examples with replacement and scores both systems on the *same* draw, so the
    interval reflects test-set sampling with the pairing kept. Returns ``diff`` (on the full test set),
    ``ci_low``/``ci_high`` (percentile interval at ``confidence``) and ``p_value``: two-sided, for "no
    difference", from the bootstrap distribution shifted to mean 0: (1 + #{|d* − d| ≥ |d|}) / (1 + B).
    Deterministic for a given ``seed``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not (len(y_true) == len(pred_a) == len(pred_b)) or not y_true:
        raise ValueError("y_true, pred_a and pred_b must be non-empty and of the same length")
    (truth, a, b), n_classes = _encode(y_true, pred_a, pred_b)
    n = len(truth)
    full = np.ones((1, n))
    diff = float(
        _weighted_scores(full, truth, a, n_classes, metric)[0]
        - _weighted_scores(full, truth, b, n_classes, metric)[0]
    )
    diffs = np.empty(n_resamples)
    for start, weights in _resample_weights(n, n_resamples, seed):
        diffs[start : start + len(weights)] = _weighted_scores(
            weights, truth, a, n_classes, metric
        ) - _weighted_scores(weights, truth, b, n_classes, metric)
    alpha = 1 - confidence
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    extreme = int(np.sum(np.abs(diffs - diff) >= abs(diff) - 1e-12))
    return {
        "diff": diff,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": min(1.0, (1 + extreme) / (1 + n_resamples)),
        "n_resamples": int(n_resamples),
        "n": int(n),
    }
