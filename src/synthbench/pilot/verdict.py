"""From the pilot's cheap classifiers to a predicted full-run gap with an interval, and go / borderline / no-go.

The prediction (uncalibrated; Macro-F1 as fractions, rows per label):

1. the real learning curve: cheap-classifier Macro-F1 on the real validation rows at nested real sizes;
2. the pilot's worth: the real rows per label at which that curve reaches the pilot classifier's score
   (interpolated in log rows on the curve's running maximum), as a ratio to the pilot's rows per label;
3. the full run's predicted synthetic score: the curve at ratio × ``generate.per_label`` (capped at the curve's
   end: no extrapolation past the real data); a pilot below the curve's first point gets no growth credit (its
   own score);
4. predicted gap = the curve at every real row − (3).

Every score is recomputed on the same bootstrap resamples of the validation rows, so the interval carries the
validation set's sampling noise. Verdict: *inconclusive* when the real baseline's interval does not clear
chance (1 / number of labels, a uniform guesser's Macro-F1); *go* when the gap's upper bound is below
``go_gap``; *no-go* when its lower bound is above ``no_go_gap``; else *borderline*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from synthbench.analysis.learning_curve import real_equivalent
from synthbench.stats import bootstrap_scores, metric_value

REAL_PREFIX = "real@"  # prediction names of the curve's classifiers: real@<rows per label>
PILOT = "pilot"


def curve_at(sizes: Sequence[int], scores: Sequence[float], rows: float) -> float:
    """The curve's running maximum at ``rows``, interpolated in log(rows); clamped to the measured range."""
    envelope = np.maximum.accumulate(np.asarray(scores, dtype=float))
    if rows <= sizes[0]:
        return float(envelope[0])
    if rows >= sizes[-1]:
        return float(envelope[-1])
    logs = np.log(np.asarray(sizes, dtype=float))
    return float(np.interp(math.log(rows), logs, envelope))


def predicted_gap(
    sizes: Sequence[int], curve: Sequence[float], pilot_score: float, pilot_rows: int, full_rows: int
) -> tuple[float, float, float]:
    """(gap, real rows per label the pilot is worth, predicted full-run synthetic Macro-F1); see the module."""
    worth, bound = real_equivalent(list(sizes), list(curve), pilot_score)
    # below the curve's first point there is no measured growth to credit: the pilot's own score
    below = bound == "below"
    synthetic = pilot_score if below else curve_at(sizes, curve, worth / pilot_rows * full_rows)
    return curve_at(sizes, curve, sizes[-1]) - synthetic, worth, synthetic


@dataclass(frozen=True)
class Prediction:
    """The predicted gap (real − synthetic Macro-F1, fractions) with its 95% bootstrap interval, the real
    baseline with its interval, chance, and what the pilot's rows are worth (real rows per label)."""

    gap: float
    gap_low: float
    gap_high: float
    real: float
    real_low: float
    chance: float
    pilot_score: float
    worth_rows: float
    synthetic: float

    def as_dict(self) -> dict[str, float]:
        return {key: round(float(value), 4) for key, value in self.__dict__.items()}


def predict(
    y_val: Sequence[str],
    predictions: Mapping[str, Sequence[str]],
    *,
    sizes: Sequence[int],
    pilot_rows: int,
    full_rows: int,
    n_labels: int,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Prediction:
    """:class:`Prediction` from each cheap classifier's predictions on the real validation rows
    (``real@<size>`` for every size of ``sizes``, ascending, and ``pilot``)."""
    names = [f"{REAL_PREFIX}{size}" for size in sizes]
    full = {name: metric_value(y_val, predictions[name]) for name in [*names, PILOT]}
    gap, worth, synthetic = predicted_gap(sizes, [full[n] for n in names], full[PILOT], pilot_rows, full_rows)
    draws = bootstrap_scores(
        y_val, {n: predictions[n] for n in [*names, PILOT]}, n_resamples=n_resamples, seed=seed
    )
    gaps = [
        predicted_gap(sizes, [draws[n][b] for n in names], draws[PILOT][b], pilot_rows, full_rows)[0]
        for b in range(n_resamples)
    ]
    low, high = np.quantile(gaps, [0.025, 0.975])
    return Prediction(
        gap=gap,
        gap_low=float(low),
        gap_high=float(high),
        real=full[names[-1]],
        real_low=float(np.quantile(draws[names[-1]], 0.025)),
        chance=1.0 / n_labels,
        pilot_score=full[PILOT],
        worth_rows=worth,
        synthetic=synthetic,
    )


def verdict(prediction: Prediction, *, go_gap: float, no_go_gap: float) -> tuple[str, str]:
    """(``go`` | ``borderline`` | ``no-go`` | ``inconclusive``, the reason in one plain sentence)."""
    p = prediction
    interval = f"{100 * p.gap:+.1f} points [{100 * p.gap_low:+.1f}, {100 * p.gap_high:+.1f}]"
    if p.real_low <= p.chance:
        return "inconclusive", (
            f"the real-data baseline ({100 * p.real:.1f} Macro-F1, 95% lower bound {100 * p.real_low:.1f}) is not "
            f"clearly above chance ({100 * p.chance:.1f}), so no gap can be measured: more real rows "
            "(prepare.train_per_label) or a larger validation share (pilot.val_fraction) would settle it"
        )
    if p.gap_high <= go_gap:
        return "go", f"the predicted gap to real data, {interval}, stays within {100 * go_gap:.0f} points"
    if p.gap_low >= no_go_gap:
        return "no-go", f"the predicted gap to real data, {interval}, exceeds {100 * no_go_gap:.0f} points"
    return "borderline", (
        f"the predicted gap to real data, {interval}, lies between {100 * go_gap:.0f} and {100 * no_go_gap:.0f} "
        "points or its interval spans them: more pilot rows (pilot.rows_per_label) or more real rows would "
        "narrow it"
    )
