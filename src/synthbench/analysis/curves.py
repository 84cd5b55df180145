"""Training curves from each model's ``training.json`` history, and the wide per-series tables DVC plots read.

DVC's ``plots`` draw one line per (file, column) and one colour per revision, so the curves are written wide:
one file per task and backbone, ``x`` in the first column and one column per condition (every condition
always present, empty where there is no value, because DVC refuses a listed column that a file lacks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from synthbench.records import TrainingManifest

HISTORY_FIELDS = ("train_loss", "val_loss", "val_macro_f1", "val_accuracy")


def history_rows(training: TrainingManifest) -> list[dict[str, Any]]:
    """Per-epoch rows of every seed of one training: ``[{seed, epoch, train_loss, val_loss, val_macro_f1,
    val_accuracy}, ...]``; fields a history lacks become None."""
    return [
        {
            "seed": run.seed,
            "epoch": float(entry["epoch"]),
            **{name: entry.get(name) for name in HISTORY_FIELDS},
        }
        for run in training.seeds
        for entry in run.history
        if entry.get("epoch") is not None
    ]


def curves_frame(trainings: Mapping[tuple[str, str, str], TrainingManifest]) -> pd.DataFrame:
    """Long table of every history: (task, condition, backbone) → training.json, to rows ``task``,
    ``condition``, ``backbone``, ``seed``, ``epoch``, ``train_loss``, ``val_loss``, ``val_macro_f1``,
    ``val_accuracy`` (losses in nats per example, scores as fractions)."""
    rows = [
        {"task": task, "condition": condition, "backbone": backbone, **row}
        for (task, condition, backbone), training in trainings.items()
        for row in history_rows(training)
    ]
    columns = ["task", "condition", "backbone", "seed", "epoch", *HISTORY_FIELDS]
    frame = pd.DataFrame(rows, columns=columns)
    frame[list(HISTORY_FIELDS)] = frame[list(HISTORY_FIELDS)].astype(float)
    return frame


def mean_over_seeds(frame: pd.DataFrame, keys: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean of ``values`` per ``keys`` (e.g. per task, condition, backbone and epoch, over seeds)."""
    if frame.empty:
        return frame[[*keys, *values]]
    return frame.groupby(list(keys), sort=False, as_index=False)[list(values)].mean()


def wide_table(frame: pd.DataFrame, x: str, value: str, series: str, columns: Sequence[str]) -> pd.DataFrame:
    """Pivot long rows to ``x`` + one column per entry of ``columns`` (values of ``series``), rows sorted by
    ``x``; a column with no data is kept, empty. Rows of ``frame`` must be unique per (x, series)."""
    if frame.empty:
        return pd.DataFrame(columns=[x, *columns])
    pivot = frame.pivot(index=x, columns=series, values=value).reindex(columns=list(columns))
    return pivot.sort_index().reset_index()
