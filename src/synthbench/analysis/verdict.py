"""The plain-language verdict per task: how much of real-data Macro-F1 synthetic data reaches, how much of the
remaining gap few-shot generation closes over zero-shot, and how diverse the synthetic data is next to real.

Definitions (Macro-F1 as fractions, means over seeds):
- share of real  = F1(mode) / F1(real)
- gap closed     = (F1(mode) − F1(baseline mode)) / (F1(real) − F1(baseline mode)), baseline = the first mode
  (zero-shot): 1 = reaches real, 0 = no better than the baseline, < 0 = worse than the baseline
- diversity ratio = Remote-Clique(mode) / Remote-Clique(real), on size-matched samples
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

NEAR_REAL = 0.95  # share of real Macro-F1 from which synthetic data "nearly replaces" real labels
USABLE = 0.80  # ... from which it is "usable at a cost"


def mode_name(mode: str) -> str:
    """``few_shot`` → ``few-shot``."""
    return mode.replace("_", "-")


def verdict_numbers(
    macro_f1: Mapping[str, float],
    modes: Sequence[str],
    diversity_ratio: Mapping[str, float] | None = None,
    *,
    accuracy: Mapping[str, float] | None = None,
    majority_accuracy: float | None = None,
) -> dict[str, Any]:
    """The verdict's numbers for one task and backbone.

    Args:
        macro_f1: condition (``real`` and modes) → Macro-F1 in [0, 1]; missing conditions are skipped.
        modes: generation modes in study order; the first present one is the baseline for ``gap_closed``.
        diversity_ratio: mode → Remote-Clique(mode) / Remote-Clique(real); None when not measured.
        accuracy: condition → accuracy in [0, 1], to flag modes no better than ``majority_accuracy`` (the
            accuracy of always predicting the most frequent test label).

    Returns:
        ``share_of_real`` {mode: fraction or None}, ``gap_closed`` {mode: fraction or None; the baseline
        mode is absent}, ``baseline`` (mode or None), ``diversity_ratio`` {mode: ratio}, ``best_mode``,
        ``no_better_than_majority`` [modes whose accuracy ≤ majority_accuracy].
    """
    real = macro_f1.get("real")
    present = [mode for mode in modes if mode in macro_f1]
    share = {mode: (macro_f1[mode] / real if real else None) for mode in present}
    baseline = present[0] if present else None
    closed: dict[str, float | None] = {}
    if baseline is not None and real is not None:
        remaining = real - macro_f1[baseline]
        for mode in present[1:]:
            closed[mode] = (macro_f1[mode] - macro_f1[baseline]) / remaining if remaining > 0 else None
    best = max(present, key=lambda mode: macro_f1[mode]) if present else None
    ratios = {
        mode: float(diversity_ratio[mode]) for mode in present if diversity_ratio and mode in diversity_ratio
    }
    trivial = [
        mode
        for mode in present
        if accuracy
        and majority_accuracy is not None
        and mode in accuracy
        and accuracy[mode] <= majority_accuracy
    ]
    return {
        "share_of_real": share,
        "gap_closed": closed,
        "baseline": baseline,
        "diversity_ratio": ratios,
        "best_mode": best,
        "no_better_than_majority": trivial,
        "majority_accuracy": majority_accuracy,
    }


def _pct(fraction: float) -> str:
    """Whole percent, halves rounded up, immune to float noise (0.7 / 0.8 = 0.87499… prints 88%)."""
    magnitude = math.floor(abs(100 * fraction) + 0.5 + 1e-9)
    return f"{'-' if fraction < 0 and magnitude else ''}{magnitude}%"


def verdict_sentence(numbers: Mapping[str, Any], macro_f1: Mapping[str, float], caveat: str = "") -> str:
    """Render :func:`verdict_numbers` as plain sentences, e.g. "zero-shot synthetic data reaches 82% of
    real-data Macro-F1; few-shot closes 40% of the remaining gap; diversity is 0.60× real (zero-shot)"."""
    share: Mapping[str, float | None] = numbers["share_of_real"]
    if "real" not in macro_f1 or not share:
        return "No verdict: the real condition or every synthetic condition is missing."
    if not macro_f1["real"]:
        return "No verdict: the real-data model scores a Macro-F1 of 0, so there is nothing to compare with."
    parts = []
    baseline = numbers["baseline"]
    parts.append(
        f"{mode_name(baseline)} synthetic data reaches {_pct(share[baseline])} of real-data Macro-F1 "
        f"({100 * macro_f1[baseline]:.1f} vs {100 * macro_f1['real']:.1f})"
    )
    for mode, closed in numbers["gap_closed"].items():
        if closed is None:
            parts.append(
                f"{mode_name(baseline)} already matches real data, so {mode_name(mode)} has no gap to "
                f"close ({mode_name(mode)} reaches {_pct(share[mode])})"
            )
        elif closed >= 0:
            parts.append(
                f"{mode_name(mode)} closes {_pct(closed)} of the remaining gap "
                f"(reaching {_pct(share[mode])} of real)"
            )
        else:
            parts.append(
                f"{mode_name(mode)} does worse than {mode_name(baseline)}: it widens the gap by "
                f"{_pct(-closed)} (reaching {_pct(share[mode])} of real)"
            )
    ratios: Mapping[str, float] = numbers["diversity_ratio"]
    if ratios:
        listed = ", ".join(f"{ratio:.2f}× real for {mode_name(mode)}" for mode, ratio in ratios.items())
        parts.append(f"diversity (Remote-Clique) is {listed}")
    trivial = numbers.get("no_better_than_majority") or []
    if trivial:
        names = " and ".join(mode_name(mode) for mode in trivial)
        parts.append(
            f"{names} {'is' if len(trivial) == 1 else 'are'} no more accurate than always predicting "
            f"the most frequent label ({_pct(numbers['majority_accuracy'])} accuracy)"
        )
    text = "; ".join(parts) + "."
    best = numbers["best_mode"]
    best_share = share[best]
    if best_share >= NEAR_REAL:
        bottom = f"Synthetic data ({mode_name(best)}) nearly replaces real labels for this task."
    elif best_share >= USABLE:
        bottom = (
            f"Synthetic data ({mode_name(best)}) is usable but costs {_pct(1 - best_share)} of Macro-F1; "
            "real labels still pay off."
        )
    else:
        bottom = (
            f"Synthetic data is no substitute here (best: {mode_name(best)} at {_pct(best_share)} of "
            "real); label real data."
        )
    text = text[0].upper() + text[1:]
    return f"{text} {bottom}" + (f" ({caveat})" if caveat else "")
