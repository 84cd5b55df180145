"""Training curves from each model's ``training.json`` history, and the wide per-series tables DVC plots read.

DVC's ``plots`` draw one line per (file, column) and one colour per revision, so the curves are written wide:
one file per task and backbone, ``x`` in the first column and one column per condition (every condition
always present, empty where there is no value, because DVC refuses a listed column that a file lacks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

HISTORY_FIELDS = ("train_loss", "val_loss", "val_macro_f1", "val_accuracy")


def history_rows(training: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-epoch rows of one ``training.json``.

    Reads ``history`` (a list of ``{epoch, train_loss, val_loss, val_macro_f1, val_accuracy}``) or, for
    several seeds, ``seeds: [{seed, history}, ...]``. Missing fields become None.

    Returns:
        ``[{seed, epoch, train_loss, val_loss, val_macro_f1, val_accuracy}, ...]`` (seed None for one run).
    """
    runs: list[tuple[Any, Sequence[Mapping[str, Any]]]] = []
    if training.get("history"):
        runs.append((training.get("seed"), training["history"]))
    for run in training.get("seeds") or []:
        if isinstance(run, Mapping) and run.get("history"):
            runs.append((run.get("seed"), run["history"]))
    rows = []
    for seed, history in runs:
        for entry in history:
            if entry.get("epoch") is None:
                continue
            rows.append({"seed": seed, "epoch": float(entry["epoch"]),
                         **{field: entry.get(field) for field in HISTORY_FIELDS}})
    return rows


def curves_frame(trainings: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> pd.DataFrame:
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
