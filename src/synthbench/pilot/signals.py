"""The pilot's signals, each from sentence embeddings (rows L2-normalised, shape (n, d)) and label names; all of
them read the real *train* split only (a fit part and a validation part of it), never the test split.

- label fidelity: a classifier fit on real rows labels each synthetic row; the share that reads as its intended
  label (ZeroGen's "correctness"), per label, with the confusions that matter;
- distinguishability: cross-validated AUC of a real-vs-synthetic classifier (Lopez-Paz & Oquab 2017); 0.5 = the
  two cannot be told apart;
- worth: Macro-F1 on the real validation rows of a cheap classifier (frozen embeddings + logistic regression)
  fit on the synthetic rows, and of the same classifier fit on nested real subsamples (the real learning curve).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from synthbench.encoder import cheap_classifier

__all__ = ["cheap_classifier"]  # the pilot's classifier lives with the encoder, shared with generation


@dataclass(frozen=True)
class Fidelity:
    """``overall`` and ``per_label``: share of synthetic rows the real-data oracle reads as their intended label
    (fractions); ``confusions``: (intended, read as, share of the intended label's rows), largest first, shares
    ≥ 10%; ``oracle_accuracy``: the oracle's accuracy on real validation rows (what "agreement" can reach)."""

    overall: float
    per_label: dict[str, float]
    confusions: list[tuple[str, str, float]] = field(default_factory=list)
    oracle_accuracy: float | None = None


def label_fidelity(
    oracle: LogisticRegression,
    synth_emb: np.ndarray,
    synth_labels: Sequence[str],
    *,
    oracle_accuracy: float | None = None,
    min_share: float = 0.10,
) -> Fidelity:
    """How many synthetic rows carry their intended label, as read by ``oracle`` (fit on real rows)."""
    if len(synth_labels) == 0:
        raise ValueError("label fidelity needs at least one synthetic row")
    read = oracle.predict(synth_emb)
    intended = np.asarray(list(synth_labels))
    per_label: dict[str, float] = {}
    confusions: list[tuple[str, str, float]] = []
    for label in dict.fromkeys(intended.tolist()):
        mine = read[intended == label]
        per_label[label] = float(np.mean(mine == label))
        for other, count in Counter(mine[mine != label].tolist()).items():
            share = count / len(mine)
            if share >= min_share:
                confusions.append((label, str(other), share))
    confusions.sort(key=lambda item: -item[2])
    return Fidelity(float(np.mean(read == intended)), per_label, confusions, oracle_accuracy)


def distinguishability(
    real_emb: np.ndarray, synth_emb: np.ndarray, *, folds: int = 5, seed: int = 0
) -> float | None:
    """Cross-validated ROC AUC of a logistic regression telling real rows (0) from synthetic rows (1).

    Both sets are first subsampled (seeded) to the smaller one's size, so AUC measures the data, not the class
    balance. 0.5: indistinguishable; 1.0: every synthetic row is recognisable. None when either set has fewer
    rows than ``folds`` (too few to cross-validate).
    """
    n = min(len(real_emb), len(synth_emb))
    if n < folds:
        return None
    rng = np.random.default_rng(seed)
    real = real_emb[rng.choice(len(real_emb), size=n, replace=False)]
    synth = synth_emb[rng.choice(len(synth_emb), size=n, replace=False)]
    x = np.vstack([real, synth])
    y = np.r_[np.zeros(n), np.ones(n)]
    # A synthetic row that copies a real one is held out with its twin (one group per distinct vector): else the
    # twin, trained with the other class, pulls the held-out copy's score the wrong way (AUC below 0.5).
    groups = np.unique(np.round(x, 6), axis=0, return_inverse=True)[1].ravel()
    scores = np.empty(len(y))
    for train, held in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups):
        model = LogisticRegression(max_iter=2000, random_state=seed).fit(x[train], y[train])
        scores[held] = model.predict_proba(x[held])[:, 1]
    return float(roc_auc_score(y, scores))


def nested_subsamples(labels: Sequence[str], sizes: Sequence[int], seed: int = 0) -> dict[int, np.ndarray]:
    """Row indices of nested, stratified subsamples with ``size`` rows per label (each size's rows contain the
    smaller sizes' rows); a size above a label's count takes all of that label."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(list(labels))
    order = {label: rng.permutation(np.flatnonzero(labels_arr == label)) for label in dict.fromkeys(labels)}
    return {size: np.sort(np.concatenate([idx[:size] for idx in order.values()])) for size in sizes}


def curve_sizes(smallest_label: int, pilot_rows: int) -> list[int]:
    """Rows per label of the real learning curve: doubling from 2 up to every real row, always with the pilot's
    own size, so a pilot is compared with real data of its size and placed on the curve."""
    sizes = {min(pilot_rows, smallest_label), smallest_label}
    size = 2
    while size < smallest_label:
        sizes.add(size)
        size *= 2
    return sorted(sizes)
