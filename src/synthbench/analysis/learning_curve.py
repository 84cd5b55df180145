"""The real-data learning curve and what a synthetic set is worth on it.

Conditions ``real_n<N>`` train on a stratified subsample of N real rows; ``real`` on all of them. Their test
Macro-F1 against the number of real rows is the learning curve. A synthetic (or mixed) condition is worth the
number of real rows at which the curve reaches its Macro-F1: read off the curve by linear interpolation in
log(rows), after making the curve non-decreasing (a running maximum), because a noisy dip would otherwise give
two answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from synthbench.conditions import parse_condition
from synthbench.records import TrainingManifest

CURVE_COLUMNS = ["task", "backbone", "condition", "real_rows", "macro_f1", "accuracy"]
WORTH_COLUMNS = ["task", "backbone", "condition", "macro_f1", "rows", "real_equivalent_rows", "bound"]


def is_curve_condition(condition: str) -> bool:
    """``real`` or ``real_n<N>``: a point of the real-data learning curve."""
    return parse_condition(condition).is_real_only


def condition_rows(condition: str, training: TrainingManifest | None) -> int | None:
    """Rows a condition trained on (train + validation split), from its ``training.json``; for ``real_n<N>``
    without one, N. None when unknown."""
    if training is not None:
        return training.rows_trained
    return parse_condition(condition).subsample


def learning_curve_frame(
    table: pd.DataFrame, trainings: Mapping[tuple[str, str, str], TrainingManifest]
) -> pd.DataFrame:
    """One row per learning-curve point: :data:`CURVE_COLUMNS`, sorted by task, backbone, real_rows.

    Args:
        table: :func:`synthbench.analysis.summary.summary_table` (task, condition, backbone, macro_f1, accuracy).
        trainings: (task, condition, backbone) → that model's ``training.json``.
    """
    rows = []
    for row in table.itertuples(index=False):
        if not is_curve_condition(row.condition):
            continue
        size = condition_rows(row.condition, trainings.get((row.task, row.condition, row.backbone)))
        if size is not None:
            rows.append(
                {
                    "task": row.task,
                    "backbone": row.backbone,
                    "condition": row.condition,
                    "real_rows": size,
                    "macro_f1": row.macro_f1,
                    "accuracy": row.accuracy,
                }
            )
    frame = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    # real_n<N> ≥ the real set's size trains on all of it: keep one point per size (the named 'real' one first).
    frame = frame.sort_values(["task", "backbone", "real_rows", "condition"], key=_real_first, kind="stable")
    return frame.drop_duplicates(["task", "backbone", "real_rows"]).reset_index(drop=True)


def _real_first(column: pd.Series) -> pd.Series:
    return (
        column.map(lambda value: "" if value == "real" else value) if column.name == "condition" else column
    )


def real_equivalent(sizes: list[int], scores: list[float], score: float) -> tuple[float | None, str]:
    """Real rows at which the learning curve reaches ``score``.

    Args:
        sizes: real rows of each curve point, ascending (at least one point).
        scores: Macro-F1 of each point, same order.
        score: the Macro-F1 to place on the curve.

    Returns:
        ``(rows, "within")`` interpolated in log(rows) on the curve's running maximum; ``(sizes[0], "below")``
        when ``score`` is under the smallest point (worth fewer rows than measured); ``(sizes[-1], "above")``
        when it is over every point (worth more than all the real data).
    """
    envelope = np.maximum.accumulate(np.asarray(scores, dtype=float))
    if score < envelope[0]:
        return float(sizes[0]), "below"
    if score > envelope[-1]:
        return float(sizes[-1]), "above"
    for i in range(1, len(sizes)):
        if score <= envelope[i]:
            low, high = envelope[i - 1], envelope[i]
            if high == low:
                return float(sizes[i - 1]), "within"
            fraction = (score - low) / (high - low)
            log_rows = math.log(sizes[i - 1]) + fraction * (math.log(sizes[i]) - math.log(sizes[i - 1]))
            return math.exp(log_rows), "within"
    return float(sizes[0]), "within"  # one point whose score equals ``score``


def worth_frame(
    table: pd.DataFrame, curve: pd.DataFrame, trainings: Mapping[tuple[str, str, str], TrainingManifest]
) -> pd.DataFrame:
    """For every non-curve condition (synthetic or mixed) of a task and backbone with a learning curve of at
    least two points: :data:`WORTH_COLUMNS` (``rows`` = rows it trained on; ``bound`` as in
    :func:`real_equivalent`)."""
    out = []
    for (task, backbone), points in curve.groupby(["task", "backbone"], sort=False):
        if len(points) < 2:
            continue
        sizes, scores = points["real_rows"].tolist(), points["macro_f1"].tolist()
        others = table[(table["task"] == task) & (table["backbone"] == backbone)]
        for row in others.itertuples(index=False):
            if is_curve_condition(row.condition):
                continue
            rows_equal, bound = real_equivalent(sizes, scores, float(row.macro_f1))
            out.append(
                {
                    "task": task,
                    "backbone": backbone,
                    "condition": row.condition,
                    "macro_f1": row.macro_f1,
                    "rows": condition_rows(row.condition, trainings.get((task, row.condition, backbone))),
                    "real_equivalent_rows": rows_equal,
                    "bound": bound,
                }
            )
    return pd.DataFrame(out, columns=WORTH_COLUMNS)


def describe_worth(row: Mapping[str, Any]) -> str:
    """'≈ 140', '< 20' or '> 500' real rows."""
    rows = round(float(row["real_equivalent_rows"]))
    return {"below": f"< {rows}", "above": f"> {rows}"}.get(str(row["bound"]), f"≈ {rows}")
