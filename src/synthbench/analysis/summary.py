"""The paper's Table 1: task × condition × backbone → Macro-F1 / accuracy / gap to real, as Markdown, CSV and a
PNG bar chart. Pure table-building; files are written by ``analysis.stage``.

Each row comes from one evaluation's :class:`synthbench.records.EvaluationMetrics` (means over the training
seeds, their std, the number of seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from synthbench.data.io import pyplot, save_png
from synthbench.records import EvaluationMetrics


def majority_accuracy(metrics: EvaluationMetrics) -> float | None:
    """Accuracy of always predicting the test set's most frequent label (a fraction): the largest
    ``per_class[*].support`` over the total support; None without per-class supports."""
    supports = [row.get("support") for row in metrics.per_class.values()]
    if not supports or any(s is None for s in supports) or not sum(supports):
        return None
    return max(supports) / sum(supports)


def summary_table(metrics: Sequence[EvaluationMetrics]) -> pd.DataFrame:
    """One row per (task, condition, backbone): ``macro_f1`` and ``accuracy`` (means over seeds, fractions),
    their ``*_std`` (None for one seed), ``n_seeds``, ``n_test``, ``majority_accuracy`` (see
    :func:`majority_accuracy`), and the gap to the real condition (same task
    and backbone) in points of Macro-F1 and accuracy (``*_gap_pts``, percentage points, negative = worse)."""
    rows = []
    for m in metrics:
        rows.append(
            {
                "task": m.task,
                "condition": m.condition,
                "backbone": m.backbone,
                "macro_f1": m.macro_f1_mean,
                "macro_f1_std": m.macro_f1_std,
                "accuracy": m.accuracy_mean,
                "accuracy_std": m.accuracy_std,
                "n_seeds": m.n_seeds,
                "n_test": m.n_test,
                "majority_accuracy": majority_accuracy(m),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    real = frame[frame["condition"] == "real"].set_index(["task", "backbone"])

    def gap(row: pd.Series, column: str) -> float | None:
        key = (row["task"], row["backbone"])
        if key not in real.index:
            return None
        return round(100 * (row[column] - real.loc[key, column]), 2)

    frame["macro_f1_gap_pts"] = frame.apply(gap, axis=1, column="macro_f1")
    frame["accuracy_gap_pts"] = frame.apply(gap, axis=1, column="accuracy")
    order = {name: i for i, name in enumerate(dict.fromkeys(frame["condition"]))}
    frame["_order"] = frame["condition"].map(order)
    return frame.sort_values(["task", "backbone", "_order"]).drop(columns="_order").reset_index(drop=True)


def format_pct(value: float | None, std: float | None = None) -> str:
    """A fraction as percent with one decimal, ``± std`` (also in points) when a spread is known; '—' if None."""
    if value is None or pd.isna(value):
        return "—"
    if std is None or pd.isna(std):
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} ± {100 * std:.1f}"


def to_markdown(frame: pd.DataFrame) -> str:
    """The long table: one Markdown row ``| task | backbone | condition | ... |`` per row of ``frame``."""
    lines = [
        "| task | backbone | condition | Macro-F1 | accuracy | Macro-F1 gap to real (pts) | n test |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in frame.itertuples(index=False):
        gap = (
            "—"
            if row.condition == "real" or pd.isna(row.macro_f1_gap_pts)
            else f"{row.macro_f1_gap_pts:+.1f}"
        )
        lines.append(
            f"| {row.task} | {row.backbone} | {row.condition} | {format_pct(row.macro_f1, row.macro_f1_std)} | "
            f"{format_pct(row.accuracy, row.accuracy_std)} | {gap} | {row.n_test} |"
        )
    return "\n".join(lines) + "\n"


def table_one(frame: pd.DataFrame, conditions: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The paper's Table 1 layout: one row per (task, backbone), one Macro-F1 and one accuracy column per
    condition (percent, ``mean ± std`` over seeds when there are several), then the Macro-F1 gap to real of
    each other condition (percentage points, signed).

    Returns:
        (header, rows) of strings, ready for a Markdown or HTML table.
    """
    others = [condition for condition in conditions if condition != "real"]
    header = ["task", "backbone"]
    header += [f"{condition} Macro-F1" for condition in conditions]
    header += [f"{condition} accuracy" for condition in conditions]
    header += [f"{condition} gap (pts)" for condition in others]
    rows: list[list[str]] = []
    for (task, backbone), group in frame.groupby(["task", "backbone"], sort=False):
        by_condition = group.set_index("condition")
        cells = [str(task), str(backbone)]
        for metric in ("macro_f1", "accuracy"):
            for condition in conditions:
                if condition in by_condition.index:
                    row = by_condition.loc[condition]
                    cells.append(format_pct(row[metric], row[f"{metric}_std"]))
                else:
                    cells.append("—")
        for condition in others:
            gap = by_condition["macro_f1_gap_pts"].get(condition)
            cells.append("—" if gap is None or pd.isna(gap) else f"{gap:+.1f}")
        rows.append(cells)
    return header, rows


def bar_chart(frame: pd.DataFrame, path: Path) -> None:
    """Grouped bars: Macro-F1 per task (groups) and condition/backbone (bars), with ±std error bars when
    there are several seeds."""
    plt = pyplot()
    series = frame.assign(series=frame["condition"] + " / " + frame["backbone"])
    pivot = series.pivot_table(index="task", columns="series", values="macro_f1", sort=False)
    errors = series.pivot_table(
        index="task", columns="series", values="macro_f1_std", sort=False, dropna=False
    )
    errors = errors.reindex(index=pivot.index, columns=pivot.columns)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(pivot.index) + 2), 4))
    yerr = None if errors.isna().all().all() else errors.fillna(0.0)
    pivot.plot.bar(ax=ax, rot=0, width=0.8, yerr=yerr, capsize=3)
    ax.set_ylabel("Macro-F1 on the real test set")
    ax.set_ylim(0, 1)
    ax.set_title("Real vs synthetic training data")
    ax.legend(fontsize=8, loc="lower right")
    save_png(fig, path, dpi=120)
