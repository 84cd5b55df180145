"""How much of the zero-shot → real gap a generation strategy closes (issue 13), and whether that can be told.

The fraction closed is ``(F1(mode) − F1(zero_shot)) / (F1(real) − F1(zero_shot))`` on seed-mean Macro-F1
(1 = as good as real, 0 = no better than zero-shot, negative = worse). Its 95% interval is a paired percentile
bootstrap over the test texts on the deployed seeds' predictions (the same draws for the three models; draws
where real is not above zero-shot have no gap to close and are dropped and counted).

A fraction means something only when there is a gap: the verdict is *inconclusive* when the real model is not
clearly above chance (:func:`synthbench.analysis.uncertainty.real_lower_bound` ≤
:func:`~synthbench.analysis.uncertainty.chance_macro_f1`) or not clearly above zero-shot (the lower end of
:func:`~synthbench.analysis.uncertainty.gap_interval` of real − zero-shot ≤ 0), the same rules the report's
verdicts follow. A mode is shown to help only when both sources of noise agree, as in the report's gap rule:
the fraction's bootstrap interval (test texts, deployed seeds) lies above 0 *and*, with ≥ 2 training seeds on
both sides, Welch's 95% interval of F1(mode) − F1(zero-shot) over seeds lies above 0 (one lucky deployed seed
must not pass for a gain). Then: *closes ≥ 50%* when the point fraction is ≥ 0.5, else *helps*; otherwise *not
shown to help*.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from synthbench.analysis.uncertainty import N_RESAMPLES, chance_macro_f1, gap_interval, real_lower_bound
from synthbench.data.io import read_jsonl
from synthbench.layout import Layout
from synthbench.records import EvaluationMetrics
from synthbench.stats import bootstrap_scores, welch_interval

BASELINE = "zero_shot"
HALF = 0.5  # the bar: a strategy that closes at least half of the gap


@dataclass(frozen=True)
class GapClosure:
    """One mode's share of the zero-shot → real gap on one task and backbone. Fractions, not percent."""

    point: float  # on seed means; nan when real is not above zero-shot
    low: float  # 95% bootstrap interval; nan when no draw had a gap
    high: float
    dropped: int  # bootstrap draws without a gap (real ≤ zero-shot), left out of the interval
    real_low: float | None  # lower 95% bound on real's Macro-F1
    chance: float | None  # a uniform guesser's Macro-F1 on this test set
    baseline_gap: tuple[float, float] | None  # 95% interval of real − zero-shot
    seed_gain: tuple[float, float] | None  # Welch 95% interval of F1(mode) − F1(zero-shot) over seeds
    verdict: str


def closure_verdict(
    point: float,
    low: float,
    real_low: float | None,
    chance: float | None,
    baseline_gap: tuple[float, float] | None,
    seed_gain: tuple[float, float] | None = None,
) -> str:
    """The verdict in words by the module's rule (all arguments fractions; see :class:`GapClosure`)."""
    if real_low is not None and chance is not None and real_low <= chance:
        return (
            f"inconclusive: real is not clearly above chance (lower bound {100 * real_low:.1f}% ≤ "
            f"{100 * chance:.1f}%); more real rows or test texts would settle it"
        )
    if baseline_gap is None or baseline_gap[0] <= 0:
        shown = (
            "no interval"
            if baseline_gap is None
            else f"[{100 * baseline_gap[0]:+.1f}, {100 * baseline_gap[1]:+.1f}]"
        )
        return f"inconclusive: real is not clearly above zero-shot (gap {shown} points); there is no gap to close"
    if np.isfinite(low) and low > 0 and (seed_gain is None or seed_gain[0] > 0):
        return "closes ≥ 50% (interval > 0)" if point >= HALF else "helps (interval > 0)"
    return "not shown to help"


def gap_closure(
    layout: Layout, task: str, mode: str, backbone: str, seed: int, n_resamples: int = N_RESAMPLES
) -> GapClosure:
    """Measure ``mode`` against ``real`` and :data:`BASELINE` from their ``metrics.json`` and
    ``predictions.jsonl`` under ``layout``. Raises ValueError when the three were not scored on the same
    test texts in the same order."""
    conditions = ("real", BASELINE, mode)
    metrics = {c: EvaluationMetrics.read(layout.metrics(task, c, backbone)) for c in conditions}
    rows = {c: read_jsonl(layout.predictions(task, c, backbone)) for c in conditions}
    texts = [r["text"] for r in rows["real"]]
    if any([r["text"] for r in rows[c]] != texts for c in conditions):
        raise ValueError(f"{task}: the predictions of {', '.join(conditions)} are not on the same test texts")
    means = {c: metrics[c].macro_f1_mean for c in conditions}
    remaining = means["real"] - means[BASELINE]
    point = (means[mode] - means[BASELINE]) / remaining if remaining > 0 else float("nan")
    truth = [str(r["label"]) for r in rows["real"]]
    draws = bootstrap_scores(
        truth,
        {c: [str(r["prediction"]) for r in rows[c]] for c in conditions},
        n_resamples=n_resamples,
        seed=seed,
    )
    gap = draws["real"] - draws[BASELINE]
    usable = gap > 0
    fractions = (draws[mode][usable] - draws[BASELINE][usable]) / gap[usable]
    low, high = (
        (float(v) for v in np.percentile(fractions, [2.5, 97.5])) if len(fractions) else (np.nan, np.nan)
    )
    real_low = real_lower_bound(metrics["real"], rows["real"], seed)
    chance = chance_macro_f1(Counter(truth))
    baseline_gap = gap_interval(metrics["real"], rows["real"], metrics[BASELINE], rows[BASELINE], seed)
    seed_gain = welch_interval(
        [s.macro_f1 for s in metrics[mode].seeds], [s.macro_f1 for s in metrics[BASELINE].seeds]
    )
    return GapClosure(
        point=point,
        low=low,
        high=high,
        dropped=int((~usable).sum()),
        real_low=real_low,
        chance=chance,
        baseline_gap=baseline_gap,
        seed_gain=seed_gain,
        verdict=closure_verdict(point, low, real_low, chance, baseline_gap, seed_gain),
    )
