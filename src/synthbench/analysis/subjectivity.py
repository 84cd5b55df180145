"""Task- and instance-level subjectivity (Li et al. 2023, section "subjectivity").

Task level: crowd workers compare pairs of tasks; a Bradley–Terry model turns the comparisons into one
subjectivity score per task, which is then ranked and binned into star levels.
Instance level: several annotators label each test instance; the agreement a_i of an instance is the share of
votes its most popular label got. Evaluating only instances with a_i ≥ γ for rising γ, and fitting a line to
accuracy against γ, shows how much a model's errors concentrate on the ambiguous (subjective) instances.

Everything here is pure (lists and arrays in, numbers out) except :func:`read_comparisons_csv`.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats
from sklearn.metrics import accuracy_score, f1_score

from synthbench.data.io import read_table
from synthbench.errors import DataError

COMPARISON_COLUMNS = ("task_a", "task_b", "winner")

# ----------------------------------------------------------------------------------------------------
# Task level: Bradley–Terry
# ----------------------------------------------------------------------------------------------------


def bradley_terry(
    comparisons: Sequence[tuple[str, str, str]],
    *,
    prior: float = 0.5,
    max_iter: int = 1000,
    tol: float = 1e-10,
) -> dict[str, float]:
    """Fit Bradley–Terry strengths to pairwise "which is more subjective?" judgements.

    Model: P(i judged more subjective than j) = s_i / (s_i + s_j). Strengths are fitted by maximum likelihood
    with the MM algorithm of Hunter (2004), updating all items at once:
    ``s_i <- W_i / sum_j n_ij / (s_i + s_j)`` (W_i: wins of i, n_ij: comparisons between i and j).

    Prior: the MLE does not exist when an item never wins (its strength runs to 0) or never loses. So every
    item also plays ``prior`` won and ``prior`` lost pseudo-games against a virtual item of fixed strength 1.
    This shrinks strengths slightly towards each other (e.g. 3 wins out of 4 gives P = 0.72 instead of 0.75
    with the default ``prior=0.5``) and makes the MLE exist and be unique. ``prior=0`` gives the plain MLE,
    which then requires every item to win at least once and lose at least once.

    Args:
        comparisons: items ``(a, b, winner)``; ``winner`` is ``a`` or ``b`` and is the one judged MORE
            subjective. Repeated pairs are fine (each row is one judgement).
        prior: pseudo-games won and lost by each item against the virtual item; ≥ 0.
        max_iter: most MM iterations; a ``RuntimeWarning`` is issued if they run out.
        tol: stop when no normalised strength moves by more than ``tol``.

    Returns:
        ``{item: strength}``, strengths > 0 normalised to sum to 1, so ``s_i / (s_i + s_j)`` is directly the
        fitted probability that i is judged more subjective than j. Higher = more subjective.

    Raises:
        ValueError: a winner not in its pair, a pair comparing an item with itself, fewer than 2 distinct
            items, a negative prior, or (with ``prior=0``) an item that never wins or never loses.
    """
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    items: list[str] = []
    index: dict[str, int] = {}
    pairs: list[tuple[int, int, int]] = []  # (i, j, winner index)
    for row_number, (a, b, winner) in enumerate(comparisons):
        if a == b:
            raise ValueError(f"comparison {row_number} compares {a!r} with itself")
        if winner not in (a, b):
            raise ValueError(f"comparison {row_number}: winner {winner!r} is neither {a!r} nor {b!r}")
        for name in (a, b):
            if name not in index:
                index[name] = len(items)
                items.append(name)
        pairs.append((index[a], index[b], index[winner]))
    if len(items) < 2:
        raise ValueError(f"Bradley–Terry needs comparisons between at least 2 items, got {len(items)}")

    n_items = len(items)
    wins = np.zeros(n_items)
    games = np.zeros((n_items, n_items))  # games[i, j] = n_ij, symmetric
    for i, j, w in pairs:
        wins[w] += 1
        games[i, j] += 1
        games[j, i] += 1
    losses = games.sum(axis=1) - wins
    if prior == 0:
        never = [items[k] for k in range(n_items) if wins[k] == 0 or losses[k] == 0]
        if never:
            raise ValueError(
                f"with prior=0 every item must win and lose at least once; {never} do not (use prior > 0)"
            )

    strengths = np.ones(n_items)
    normalised = strengths / strengths.sum()
    for _ in range(max_iter):
        denominators = (games / (strengths[:, None] + strengths[None, :])).sum(axis=1)
        # The virtual item (strength 1) contributes 2·prior games to each item's denominator.
        denominators += 2 * prior / (strengths + 1.0)
        strengths = (wins + prior) / denominators
        if prior == 0:
            strengths /= strengths.sum()  # the likelihood is scale-free without the anchor; keep numbers tame
        else:
            strengths *= _best_scale_against_anchor(strengths)
        new_normalised = strengths / strengths.sum()
        converged = np.max(np.abs(new_normalised - normalised)) <= tol
        normalised = new_normalised
        if converged:
            break
    else:
        warnings.warn(
            f"Bradley–Terry MM did not converge to tol={tol} in {max_iter} iterations",
            RuntimeWarning,
            stacklevel=2,
        )
    return {name: float(normalised[k]) for k, name in enumerate(items)}


def _best_scale_against_anchor(strengths: np.ndarray) -> float:
    """The factor c that maximises the likelihood of ``c * strengths`` (only the pseudo-games depend on c).

    Real games are scale-free, so plain MM moves the overall scale only through the weak pseudo-games and
    crawls (thousands of iterations). Solving for the scale exactly each iteration keeps every step an ascent
    step and converges in tens of iterations. Stationarity: sum_i 2 c s_i / (c s_i + 1) = n_items, whose left
    side rises monotonically in t = log c from 0 to 2 n_items.
    """
    log_strengths = np.log(strengths)

    def excess(t: float) -> float:
        return float(np.sum(2.0 / (1.0 + np.exp(-(t + log_strengths))))) - len(strengths)

    low, high = -log_strengths.max() - 50.0, -log_strengths.min() + 50.0
    return float(np.exp(optimize.brentq(excess, low, high, xtol=1e-14)))


def read_comparisons_csv(path: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    """Read pairwise judgements from a CSV with columns ``task_a, task_b, winner`` (+ optional ``annotator``).

    Returns ``[(task_a, task_b, winner), ...]`` in file order, cells stripped of surrounding whitespace; extra
    columns such as ``annotator`` are ignored.

    Raises:
        DataError: the file is missing, a required column is missing, a cell is empty, or a winner is neither
            task of its row (the message names the file, row and fix).
    """
    frame = read_table(path, "pass the path of a task_a,task_b,winner CSV (params analysis.comparisons_csv)")
    frame.columns = [str(name).strip() for name in frame.columns]
    for column in COMPARISON_COLUMNS:
        if column not in frame.columns:
            raise DataError(
                f"{path}: missing column {column!r} (found {list(frame.columns)}); "
                f"the header must contain {', '.join(COMPARISON_COLUMNS)}"
            )
    comparisons = []
    for line_number, row in enumerate(frame[list(COMPARISON_COLUMNS)].itertuples(index=False), start=2):
        a, b, winner = (str(cell).strip() for cell in row)  # line 1 is the header
        if not (a and b and winner):
            raise DataError(
                f"{path}, line {line_number}: empty task_a, task_b or winner; fill or drop the row"
            )
        if winner not in (a, b):
            raise DataError(
                f"{path}, line {line_number}: winner {winner!r} is neither {a!r} nor {b!r}; "
                "winner must repeat one of the two task names"
            )
        comparisons.append((a, b, winner))
    return comparisons


def rank(scores: Mapping[str, float]) -> dict[str, int]:
    """Rank items by score: 1 = lowest score (most objective), ``len(scores)`` = most subjective.

    Ties are broken by item name so the ranking is deterministic.
    """
    ordered = sorted(scores, key=lambda name: (scores[name], name))
    return {name: position for position, name in enumerate(ordered, start=1)}


def star_levels(scores: Mapping[str, float], n_levels: int = 5) -> dict[str, int]:
    """Bin items into ``n_levels`` equal-count star levels by rank: 1 = most objective, ``n_levels`` = most
    subjective.

    Level of the item with (average, 1-based) rank r among n items: ``1 + floor((r - 1) * n_levels / n)``,
    i.e. quantile bins of the ranking (10 tasks, 5 levels → 2 tasks per level). Tied scores share a level.
    With fewer items than levels some levels stay empty (2 items → levels 1 and 3). Only the order of the
    scores matters.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    if not scores:
        return {}
    names = list(scores)
    ranks = stats.rankdata([scores[name] for name in names], method="average")
    n = len(names)
    return {name: 1 + int(np.floor((r - 1) * n_levels / n)) for name, r in zip(names, ranks, strict=True)}


# ----------------------------------------------------------------------------------------------------
# Instance level: agreement and accuracy against an agreement threshold
# ----------------------------------------------------------------------------------------------------


def instance_agreement(label_votes: Sequence[Sequence[str]]) -> np.ndarray:
    """Agreement per instance: votes for its most popular label / number of annotators of that instance.

    Args:
        label_votes: one sequence of labels per instance, one label per annotator (counts may differ).

    Returns:
        float64 array (n_instances,) with values in (0, 1].
    """
    agreement = np.empty(len(label_votes), dtype=np.float64)
    for k, votes in enumerate(label_votes):
        if isinstance(votes, str):
            raise ValueError(f"instance {k}: expected a sequence of labels, got the string {votes!r}")
        if len(votes) == 0:
            raise ValueError(f"instance {k} has no votes")
        agreement[k] = Counter(votes).most_common(1)[0][1] / len(votes)
    return agreement


def as_agreement(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Validate precomputed agreement values (e.g. the ``agreement`` column of an annotations file).

    Returns a float64 array (n,); raises ValueError on values that are not finite or outside [0, 1].
    """
    agreement = np.asarray(values, dtype=np.float64)
    if agreement.ndim != 1:
        raise ValueError(f"agreement must be 1-D, got shape {agreement.shape}")
    bad = ~np.isfinite(agreement) | (agreement < 0) | (agreement > 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"agreement must lie in [0, 1]; instance {first} has {agreement[first]}")
    return agreement


def threshold_curve(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    agreement: Sequence[float] | np.ndarray,
    thresholds: Sequence[float],
) -> list[dict[str, Any]]:
    """Accuracy and macro-F1 on the instances whose agreement reaches each threshold γ.

    Args:
        y_true, y_pred: gold and predicted labels, length n.
        agreement: a_i per instance, length n, from :func:`instance_agreement` or precomputed (validated with
            :func:`as_agreement`). Compared as floats: pass thresholds on the same grid as the data
            (0.66 for a "66% agree" bucket, not 2/3).
        thresholds: the γ values, in the order wanted.

    Returns:
        One dict per γ: ``threshold``, ``n`` (instances with a_i ≥ γ), ``accuracy`` and ``macro_f1``
        (``f1_score(average="macro")`` over the labels present in the kept instances' y_true, so a class
        absent at high γ does not count as F1 = 0). Both metrics are None when n = 0.
    """
    truth = np.asarray(y_true, dtype=object)
    predicted = np.asarray(y_pred, dtype=object)
    agreement_array = as_agreement(agreement)
    if not len(truth) == len(predicted) == len(agreement_array):
        raise ValueError(
            f"y_true, y_pred and agreement must have the same length, got "
            f"{len(truth)}, {len(predicted)} and {len(agreement_array)}"
        )
    curve: list[dict[str, Any]] = []
    for threshold in thresholds:
        kept = agreement_array >= threshold
        n_kept = int(kept.sum())
        row: dict[str, Any] = {"threshold": float(threshold), "n": n_kept, "accuracy": None, "macro_f1": None}
        if n_kept:
            kept_true, kept_pred = list(truth[kept]), list(predicted[kept])
            labels = sorted(set(kept_true), key=str)
            row["accuracy"] = float(accuracy_score(kept_true, kept_pred))
            row["macro_f1"] = float(
                f1_score(kept_true, kept_pred, labels=labels, average="macro", zero_division=0)
            )
        curve.append(row)
    return curve


def trend(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Least-squares line and rank correlation of y against x (e.g. accuracy against γ).

    Returns ``slope``, ``intercept``, ``r2`` (``scipy.stats.linregress(x, y).rvalue ** 2``), ``spearman_rho``
    and ``spearman_p`` (``scipy.stats.spearmanr``, two-sided) and ``n``. Drop rows with a None metric (n = 0
    in :func:`threshold_curve`) before calling.

    Raises:
        ValueError: fewer than 3 points, lengths differ, non-finite values, or constant x.
    """
    x_array = np.asarray(x, dtype=np.float64)
    y_array = np.asarray(y, dtype=np.float64)
    if x_array.shape != y_array.shape or x_array.ndim != 1:
        raise ValueError(
            f"x and y must be 1-D of equal length, got shapes {x_array.shape} and {y_array.shape}"
        )
    if len(x_array) < 3:
        raise ValueError(f"a trend needs at least 3 points, got {len(x_array)}")
    if not (np.isfinite(x_array).all() and np.isfinite(y_array).all()):
        raise ValueError("x and y must be finite (drop thresholds whose metric is None)")
    if np.ptp(x_array) == 0:
        raise ValueError("x is constant; a slope is undefined")
    line = stats.linregress(x_array, y_array)
    spearman = stats.spearmanr(x_array, y_array)
    return {
        "slope": float(line.slope),
        "intercept": float(line.intercept),
        "r2": float(line.rvalue**2),
        "spearman_rho": float(spearman.statistic),
        "spearman_p": float(spearman.pvalue),
        "n": len(x_array),
    }
