"""Calibrating the pilot against full studies: leave-one-task-out lines from a pilot signal to the measured gap.

A *pair* is one task and mode of a full study with its pilot: the pilot's signals (its raw predicted gap, label
fidelity, AUC, …) and the gap the study then measured (real − synthetic test Macro-F1, points). The calibrated
prediction of a pair comes from the line ``actual ≈ a + b · signal`` fitted by least squares on the pairs of
*every other task* only, so neither the held-out pair nor its task's other modes inform it (a task's modes share
its real baseline, and would leak it). ``benchmarks/pilot_calibration.py`` prints the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

MIN_FIT_PAIRS = 3  # fewer other-task pairs than this: predict their mean instead of fitting a line


@dataclass(frozen=True)
class Pair:
    """One task/mode: the pilot's ``signals`` (name → value; NaN when the pilot could not compute it) and the
    ``actual`` gap the full study measured, in Macro-F1 points."""

    task: str
    mode: str
    signals: Mapping[str, float]
    actual: float


def leave_one_task_out(pairs: Sequence[Pair], signal: str) -> list[float]:
    """Each pair's calibrated prediction (points) from ``signal``, by a line fitted on the other tasks' pairs.

    Pairs whose ``signal`` is NaN are left out of every fit and get a NaN prediction. With fewer than
    ``MIN_FIT_PAIRS`` usable other-task pairs, or all of them at one signal value, the prediction is their mean
    gap (a line cannot be fitted)."""
    out = []
    for pair in pairs:
        value = pair.signals[signal]
        if not math.isfinite(value):
            out.append(math.nan)
            continue
        train = [p for p in pairs if p.task != pair.task and math.isfinite(p.signals[signal])]
        x = np.array([p.signals[signal] for p in train], dtype=float)
        y = np.array([p.actual for p in train], dtype=float)
        if len(train) < MIN_FIT_PAIRS or np.ptp(x) == 0:
            out.append(float(np.mean(y)) if len(y) else math.nan)
            continue
        slope, intercept = np.polyfit(x, y, 1)
        out.append(float(intercept + slope * value))
    return out


def agreement(predicted: Sequence[float], actual: Sequence[float]) -> tuple[float, float, int]:
    """(Spearman ρ, mean absolute error in points, pairs used) over the pairs with a finite prediction; ρ is NaN
    with fewer than 3 pairs or a constant side."""
    keep = [i for i, p in enumerate(predicted) if math.isfinite(p)]
    pred = np.array([predicted[i] for i in keep], dtype=float)
    act = np.array([actual[i] for i in keep], dtype=float)
    if not keep:
        return math.nan, math.nan, 0
    constant = np.ptp(pred) == 0 or np.ptp(act) == 0
    rho = math.nan if len(keep) < 3 or constant else float(spearmanr(pred, act).statistic)
    return rho, float(np.mean(np.abs(pred - act))), len(keep)
