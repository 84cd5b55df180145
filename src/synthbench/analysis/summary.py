"""The paper's Table 1: task × condition × backbone → Macro-F1 / accuracy / gap to real, as Markdown, CSV and a
PNG bar chart. Pure table-building; files are written by ``analysis.stage``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd


def summary_table(metrics: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (task, condition, backbone) with macro_f1, accuracy and the gap to the real condition
    (same task and backbone) in points of Macro-F1 and accuracy (percentage points, negative = worse)."""
    frame = pd.DataFrame(
        [{k: m[k] for k in ("task", "condition", "backbone", "macro_f1", "accuracy", "n_test")} for m in metrics]
    )
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


def to_markdown(frame: pd.DataFrame) -> str:
    lines = [
        "| task | backbone | condition | Macro-F1 | accuracy | Macro-F1 gap to real (pts) | n test |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in frame.itertuples(index=False):
        gap = "—" if row.condition == "real" or pd.isna(row.macro_f1_gap_pts) else f"{row.macro_f1_gap_pts:+.1f}"
        lines.append(
            f"| {row.task} | {row.backbone} | {row.condition} | {100 * row.macro_f1:.1f} | "
            f"{100 * row.accuracy:.1f} | {gap} | {row.n_test} |"
        )
    return "\n".join(lines) + "\n"


def bar_chart(frame: pd.DataFrame, path: Path) -> None:
    """Grouped bars: Macro-F1 per task (groups) and condition/backbone (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = frame.assign(series=frame["condition"] + " / " + frame["backbone"]).pivot_table(
        index="task", columns="series", values="macro_f1", sort=False
    )
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(pivot.index) + 2), 4))
    pivot.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_ylabel("Macro-F1 on the real test set")
    ax.set_ylim(0, 1)
    ax.set_title("Real vs synthetic training data")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
