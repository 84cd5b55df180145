"""Analyze stage: every evaluation's metrics → ``reports/summary.{md,csv,png}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthbench.analysis.summary import bar_chart, summary_table, to_markdown
from synthbench.config import Params
from synthbench.data.io import atomic_open, read_json, write_text


def run_analyze(params: Params, root: Path = Path(".")) -> dict[str, Any]:
    metrics = [
        read_json(root / "results" / task / condition / backbone / "metrics.json")
        for task in params.tasks for condition in params.conditions for backbone in params.backbones
    ]
    table = summary_table(metrics)
    reports = root / "reports"
    header = (
        "# synthbench summary\n\nMacro-F1 and accuracy (%) on each task's real test set; gap = condition − real, "
        "in Macro-F1 points.\n\n"
    )
    write_text(reports / "summary.md", header + to_markdown(table))
    with atomic_open(reports / "summary.csv") as handle:
        table.to_csv(handle, index=False)
    bar_chart(table, reports / "summary.png")
    return {"rows": len(table)}
