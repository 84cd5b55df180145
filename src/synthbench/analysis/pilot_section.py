"""The analysis report's "Pilot: predicted vs actual" section: each task's pilot verdict (``reports/pilot/<task>.json``,
written by the pilot stage) next to the gap the full study then measured, so every study checks its pilot.

A task without a pilot file is simply not listed. Gaps are real − mode test Macro-F1 in points; the pilot's
prediction is the cheap classifiers' gap on real validation rows (uncalibrated), the actual one fine-tuned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from synthbench.analysis.report import Block, Heading, Paragraph, Table
from synthbench.data.io import read_json
from synthbench.layout import LAYOUT, Layout

HEADING = "Pilot: predicted vs actual"


def pilot_rows(tasks: Sequence[str], table: pd.DataFrame, layout: Layout = LAYOUT) -> list[dict[str, Any]]:
    """One dict per (task, mode, backbone) with a pilot: ``verdict``, ``predicted_gap_pts`` and its interval,
    ``actual_gap_pts`` (None when the study has not trained that condition)."""
    out = []
    for task in tasks:
        path = layout.pilot(task, "json")
        if not path.exists():
            continue
        report = read_json(path)
        for mode, entry in report.get("modes", {}).items():
            prediction = entry["prediction"]
            scores = table[table["task"] == task]
            for backbone, group in (
                scores.groupby("backbone", sort=False) if len(scores) else [(None, scores)]
            ):
                f1 = dict(zip(group["condition"], group["macro_f1"], strict=True))
                actual = 100 * (f1["real"] - f1[mode]) if "real" in f1 and mode in f1 else None
                out.append(
                    {
                        "task": task,
                        "mode": mode,
                        "backbone": backbone,
                        "verdict": entry["verdict"],
                        "predicted_gap_pts": 100 * prediction["gap"],
                        "predicted_low_pts": 100 * prediction["gap_low"],
                        "predicted_high_pts": 100 * prediction["gap_high"],
                        "actual_gap_pts": actual,
                    }
                )
    return out


def pilot_section(rows: Sequence[dict[str, Any]]) -> list[Block]:
    """The report blocks; empty when no task has a pilot."""
    if not rows:
        return []
    inside = [
        r["predicted_low_pts"] <= r["actual_gap_pts"] <= r["predicted_high_pts"]
        for r in rows
        if r["actual_gap_pts"] is not None
    ]
    table = Table(
        ["task", "mode", "backbone", "pilot verdict", "predicted gap [95%]", "actual gap"],
        [
            [
                r["task"],
                r["mode"].replace("_", "-"),
                r["backbone"] or "",
                r["verdict"],
                f"{r['predicted_gap_pts']:+.1f} [{r['predicted_low_pts']:+.1f}, {r['predicted_high_pts']:+.1f}]",
                "not trained" if r["actual_gap_pts"] is None else f"{r['actual_gap_pts']:+.1f}",
            ]
            for r in rows
        ],
        numeric=[False, False, False, False, True, True],
    )
    summary = (
        f"The actual gap fell inside the pilot's interval for {sum(inside)} of {len(inside)} task/mode pairs."
        if inside
        else "No piloted mode has been trained yet."
    )
    return [
        Heading(HEADING),
        Paragraph(
            "Each task's pilot (reports/pilot/<task>.md) predicted the real − synthetic Macro-F1 gap, in points, "
            "from a few generated rows and cheap classifiers on real train data; the study then measured it on "
            f"the test split. The predictor is not calibrated yet. {summary}"
        ),
        table,
    ]
