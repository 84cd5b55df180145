"""Task-level subjectivity and its relation to the synthetic-vs-real gap, across the tasks of a study.

Subjectivity per task comes from pairwise comparisons (Bradley–Terry, :mod:`synthbench.analysis.subjectivity`)
when a comparisons CSV is given, else from the star level in each task's spec. The gap of a condition is its
Macro-F1 minus the real condition's (same task and backbone), in percentage points; the paper's finding is that
it widens (grows more negative) with subjectivity, i.e. a negative Spearman ρ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from synthbench.analysis.subjectivity import bradley_terry, rank, star_levels

MIN_TASKS_FOR_CORRELATION = 3
ALPHA = 0.05  # Spearman p below which the report names a direction of the gap-vs-subjectivity relation


def task_subjectivity(
    tasks: Sequence[str],
    registry_stars: Mapping[str, int],
    comparisons: Sequence[tuple[str, str, str]] | None = None,
) -> pd.DataFrame:
    """Subjectivity of each task of the study.

    Args:
        tasks: the study's tasks, in order.
        registry_stars: task → star level (1 objective … 5 subjective) from its task spec.
        comparisons: ``(task_a, task_b, winner)`` judgements, winner = the MORE subjective task; None for none.
            All tasks in the comparisons are fitted together (a task outside the study still informs the
            scale); stars are then the 5 equal-count bins of the Bradley–Terry ranking over those tasks.

    Returns:
        One row per task: ``task``, ``stars`` (int 1–5), ``score`` (Bradley–Terry strength summing to 1 over
        the compared tasks; NaN without comparisons), ``rank`` (1 = most objective among the compared tasks;
        NaN without), ``source`` (``"comparisons"`` or ``"registry"``; a task missing from the comparisons
        falls back to its registry stars).
    """
    scores = bradley_terry(comparisons) if comparisons else {}
    ranks = rank(scores) if scores else {}
    stars = star_levels(scores) if scores else {}
    rows = []
    for task in tasks:
        if task in scores:
            rows.append(
                {
                    "task": task,
                    "stars": stars[task],
                    "score": scores[task],
                    "rank": ranks[task],
                    "source": "comparisons",
                }
            )
        else:
            rows.append(
                {
                    "task": task,
                    "stars": int(registry_stars[task]),
                    "score": np.nan,
                    "rank": np.nan,
                    "source": "registry",
                }
            )
    return pd.DataFrame(rows, columns=["task", "stars", "score", "rank", "source"])


def subjectivity_measure(subjectivity: pd.DataFrame) -> str:
    """The column to correlate with: ``score`` when every task has a Bradley–Terry score, else ``stars``
    (mixing fitted scores with registry stars would compare different scales)."""
    return "score" if len(subjectivity) and subjectivity["score"].notna().all() else "stars"


def gap_frame(table: pd.DataFrame, subjectivity: pd.DataFrame) -> pd.DataFrame:
    """Join Table 1's non-real rows to task subjectivity.

    Args:
        table: :func:`synthbench.analysis.summary.summary_table` output.
        subjectivity: :func:`task_subjectivity` output.

    Returns:
        One row per (task, backbone, condition ≠ real): ``task``, ``backbone``, ``condition``, ``stars``,
        ``score``, ``macro_f1_gap_pts`` (condition − real, percentage points).
    """
    synthetic = table[table["condition"] != "real"][["task", "backbone", "condition", "macro_f1_gap_pts"]]
    return synthetic.merge(subjectivity[["task", "stars", "score"]], on="task", how="left").reset_index(
        drop=True
    )


def gap_correlations(gaps: pd.DataFrame, measure: str) -> list[dict[str, Any]]:
    """Spearman ρ between task subjectivity (column ``measure``) and the Macro-F1 gap, per condition and
    backbone, over tasks.

    Returns:
        One dict per (condition, backbone): ``condition``, ``backbone``, ``n_tasks``, ``spearman_rho`` and
        ``spearman_p`` (None when not computed) and ``note``: why not computed (fewer than
        :data:`MIN_TASKS_FOR_CORRELATION` tasks, constant subjectivity or gap), else an empty string.
    """
    results = []
    for (condition, backbone), group in gaps.groupby(["condition", "backbone"], sort=False):
        group = group.dropna(subset=[measure, "macro_f1_gap_pts"])
        row: dict[str, Any] = {
            "condition": condition,
            "backbone": backbone,
            "n_tasks": len(group),
            "spearman_rho": None,
            "spearman_p": None,
            "note": "",
        }
        if len(group) < MIN_TASKS_FOR_CORRELATION:
            row["note"] = (
                f"not computed: the study has {len(group)} task{'s' if len(group) != 1 else ''} and a rank "
                f"correlation needs at least {MIN_TASKS_FOR_CORRELATION} (and says little below ~8)"
            )
        elif group[measure].nunique() == 1:
            row["note"] = "not computed: every task has the same subjectivity"
        elif group["macro_f1_gap_pts"].nunique() == 1:
            row["note"] = "not computed: every task has the same gap"
        else:
            result = stats.spearmanr(group[measure], group["macro_f1_gap_pts"])
            row["spearman_rho"] = float(result.statistic)
            row["spearman_p"] = float(result.pvalue)
        results.append(row)
    return results


def describe_correlation(row: Mapping[str, Any], measure: str) -> str:
    """One plain sentence for a :func:`gap_correlations` row. A direction ("widens", "narrows") is claimed only
    when Spearman's p < :data:`ALPHA`; otherwise the sentence says there is no evidence of a relation at this
    number of tasks, with ρ and p, and that more tasks would settle it."""
    subject = f"{row['condition']} ({row['backbone']})"
    if row["spearman_rho"] is None:
        return f"{subject}: correlation {row['note']}."
    measure_name = "Bradley–Terry score" if measure == "score" else "star level"
    numbers = (
        f"{subject}: Spearman ρ = {row['spearman_rho']:+.2f} (p = {row['spearman_p']:.2g}, "
        f"{row['n_tasks']} tasks) between {measure_name} and Macro-F1 gap to real"
    )
    if row["spearman_p"] >= ALPHA:
        return (
            f"{numbers}; no evidence that the gap changes with subjectivity at {row['n_tasks']} tasks "
            f"(p ≥ {ALPHA:g}); more tasks would settle it."
        )
    if row["spearman_rho"] < 0:
        return f"{numbers}; the gap widens with subjectivity, as the paper found."
    return f"{numbers}; the gap narrows with subjectivity, the opposite of the paper's finding."
