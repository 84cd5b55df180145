"""The plain-language verdict per task: how much of real-data Macro-F1 synthetic data reaches, how much of the
remaining gap few-shot generation closes over zero-shot, and how diverse the synthetic data is next to real.

Definitions (Macro-F1 as fractions, means over seeds):
- share of real  = F1(mode) / F1(real)
- gap closed     = (F1(mode) − F1(baseline mode)) / (F1(real) − F1(baseline mode)), baseline = the first mode
  (zero-shot): 1 = reaches real, 0 = no better than the baseline, < 0 = worse than the baseline
- diversity ratio = Remote-Clique(mode) / Remote-Clique(real), on size-matched samples
- gap            = F1(real) − F1(mode) (positive = synthetic data is worse), with a 95% interval from
  :mod:`synthbench.analysis.uncertainty` (paired bootstrap over test texts, hulled with the seed interval)

Certainty, judged on the best mode (the one the bottom line is about) when an interval is supplied:
- the real baseline's lower 95% bound on Macro-F1 ≤ chance (uniform guessing) → *inconclusive*: there is no
  baseline to measure synthetic data against;
- the gap's interval includes zero → *inconclusive*, unless the point share is ≥ :data:`NEAR_REAL` and even the
  interval's worst end costs at most 1 − NEAR_REAL of real (then "nearly replaces" is what the interval shows);
- otherwise the usual bottom line, with the interval appended.
An inconclusive verdict names what would settle it (more test texts, seeds or rows, with their params keys).
Without intervals (``gap_ci`` None) the verdict is worded as before, from the point estimates alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from synthbench.conditions import REAL_LABEL_MODES

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
    gap_ci: Mapping[str, tuple[float, float]] | None = None,
    real_macro_f1_low: float | None = None,
    chance_macro_f1: float | None = None,
    n_seeds: int | None = None,
    n_test: int | None = None,
) -> dict[str, Any]:
    """The verdict's numbers for one task and backbone.

    Args:
        macro_f1: condition (``real`` and modes) → Macro-F1 in [0, 1]; missing conditions are skipped.
        modes: generation modes in study order; the first present one is the baseline for ``gap_closed``
            (modes that learn from the real labels, ``REAL_LABEL_MODES``, are neither baseline nor credited).
        diversity_ratio: mode → Remote-Clique(mode) / Remote-Clique(real); None when not measured.
        accuracy: condition → accuracy in [0, 1], to flag modes no better than ``majority_accuracy`` (the
            accuracy of always predicting the most frequent test label).
        gap_ci: mode → 95% interval (low, high) of F1(real) − F1(mode), fractions; None: certainty not judged.
        real_macro_f1_low: lower 95% bound of the real condition's Macro-F1 (fraction).
        chance_macro_f1: Macro-F1 of guessing uniformly among the labels on this test set (fraction).
        n_seeds, n_test: training seeds (the fewest of any condition) and test texts, for the settle hint.

    Returns:
        ``share_of_real`` {mode: fraction or None}, ``gap_closed`` {mode: fraction or None; the baseline
        mode is absent}, ``baseline`` (mode or None), ``diversity_ratio`` {mode: ratio}, ``best_mode``,
        ``no_better_than_majority`` [modes whose accuracy ≤ majority_accuracy], ``gap`` {mode: F1(real) −
        F1(mode)}, ``gap_ci`` {mode: [low, high]} (fractions), ``real_macro_f1_low``, ``chance_macro_f1``,
        ``real_above_chance`` (bool or None when not judged), ``inconclusive`` (bool), ``inconclusive_reason``
        (``real_near_chance``, ``gap_includes_zero``, ``no_interval`` or None), ``settle`` (what would settle
        an inconclusive verdict, or None), ``n_seeds``, ``n_test``.
    """
    real = macro_f1.get("real")
    present = [mode for mode in modes if mode in macro_f1]
    share = {mode: (macro_f1[mode] / real if real else None) for mode in present}
    # A mode that learnt from the real labels (targeted) is neither the baseline nor credited with closing its gap.
    comparable = [mode for mode in present if mode not in REAL_LABEL_MODES]
    baseline = comparable[0] if comparable else (present[0] if present else None)
    closed: dict[str, float | None] = {}
    if baseline is not None and real is not None:
        remaining = real - macro_f1[baseline]
        for mode in comparable[1:]:
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
    gaps = {mode: real - macro_f1[mode] for mode in present} if real is not None else {}
    intervals = {mode: [float(v) for v in gap_ci[mode]] for mode in present if gap_ci and mode in gap_ci}
    above = (
        None
        if real_macro_f1_low is None or chance_macro_f1 is None
        else bool(real_macro_f1_low > chance_macro_f1)
    )
    reason = _inconclusive_reason(best, real, share, gap_ci, intervals, above)
    return {
        "share_of_real": share,
        "gap_closed": closed,
        "baseline": baseline,
        "diversity_ratio": ratios,
        "best_mode": best,
        "no_better_than_majority": trivial,
        "majority_accuracy": majority_accuracy,
        "gap": gaps,
        "gap_ci": intervals,
        "real_macro_f1_low": real_macro_f1_low,
        "chance_macro_f1": chance_macro_f1,
        "real_above_chance": above,
        "inconclusive": reason is not None,
        "inconclusive_reason": reason,
        "settle": _settle(reason, n_seeds, n_test),
        "n_seeds": n_seeds,
        "n_test": n_test,
    }


def _inconclusive_reason(
    best: str | None,
    real: float | None,
    share: Mapping[str, float | None],
    gap_ci: Mapping[str, Any] | None,
    intervals: Mapping[str, list[float]],
    above_chance: bool | None,
) -> str | None:
    """Why the bottom line cannot be drawn (see the module docstring), or None when it can."""
    if best is None or not real:
        return None  # no verdict at all; verdict_sentence says why
    if above_chance is False:
        return "real_near_chance"
    if gap_ci is None:
        return None  # certainty not judged: the point-estimate wording of old
    if best not in intervals:
        return "no_interval"
    low, high = intervals[best]
    if low > 0 or high < 0:
        return None
    best_share = share[best]
    # An interval around zero whose worst end is still within the near-real margin shows equivalence.
    if best_share is not None and best_share >= NEAR_REAL and high <= (1 - NEAR_REAL) * real:
        return None
    return "gap_includes_zero"


def _settle(reason: str | None, n_seeds: int | None, n_test: int | None) -> str | None:
    """What would settle an inconclusive verdict, naming the params keys; None when nothing is to settle."""
    if reason is None:
        return None
    if reason == "no_interval":
        return (
            "re-run evaluate (dvc repro) so every condition has predictions.jsonl on the same test texts, "
            "or train more seeds (train.seeds)"
        )
    tests = f"more test texts (prepare.test_per_label; {n_test if n_test is not None else '?'} in all now)"
    seeds = f"more training seeds (train.seeds; {n_seeds if n_seeds is not None else '?'} now)"
    rows = (
        "more real training rows (prepare.train_per_label)"
        if reason == "real_near_chance"
        else "more synthetic rows (generate.per_label)"
    )
    return f"{tests}, {seeds} or {rows} would settle it"


def _pct(fraction: float) -> str:
    """Whole percent, halves rounded up, immune to float noise (0.7 / 0.8 = 0.87499… prints 88%)."""
    magnitude = math.floor(abs(100 * fraction) + 0.5 + 1e-9)
    return f"{'-' if fraction < 0 and magnitude else ''}{magnitude}%"


def _points(fraction: float) -> str:
    """A Macro-F1 difference in signed percentage points, one decimal: 0.1 → ``+10.0``."""
    return f"{100 * fraction:+.1f}"


def _gap_note(numbers: Mapping[str, Any], mode: str) -> str:
    """``real − few-shot gap +10.0 Macro-F1 points, 95% interval [+4.1, +16.0]``; '' without an interval."""
    interval = numbers.get("gap_ci", {}).get(mode)
    if interval is None:
        return ""
    return (
        f"real − {mode_name(mode)} gap {_points(numbers['gap'][mode])} Macro-F1 points, "
        f"95% interval [{_points(interval[0])}, {_points(interval[1])}]"
    )


def _inconclusive(numbers: Mapping[str, Any], macro_f1: Mapping[str, float]) -> str:
    """The bottom line of an inconclusive verdict: why, with its numbers, and what would settle it."""
    reason, best = numbers["inconclusive_reason"], numbers["best_mode"]
    if reason == "real_near_chance":
        why = (
            f"the real-data model is not clearly above chance (Macro-F1 {100 * macro_f1['real']:.1f}, lower "
            f"95% bound {100 * numbers['real_macro_f1_low']:.1f}; guessing uniformly among the labels scores "
            f"{100 * numbers['chance_macro_f1']:.1f}), so there is no baseline to measure synthetic data against"
        )
    elif reason == "gap_includes_zero":
        low, high = numbers["gap_ci"][best]
        why = (
            f"the real − {mode_name(best)} gap of {_points(numbers['gap'][best])} Macro-F1 points has a 95% "
            f"interval [{_points(low)}, {_points(high)}] that includes zero, so these runs cannot tell whether "
            f"{mode_name(best)} data costs any Macro-F1 at all"
        )
    else:
        why = f"no 95% interval on the real − {mode_name(best)} gap could be computed"
    return f"Inconclusive: {why}; {numbers['settle']}."


def verdict_sentence(numbers: Mapping[str, Any], macro_f1: Mapping[str, float], caveat: str = "") -> str:
    """Render :func:`verdict_numbers` as plain sentences, e.g. "zero-shot synthetic data reaches 82% of
    real-data Macro-F1; few-shot closes 40% of the remaining gap; diversity is 0.60× real (zero-shot)", then a
    bottom line: the conclusion with the best mode's gap interval, or "Inconclusive: …" with what would
    settle it."""
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
    for mode in share:
        if mode in REAL_LABEL_MODES and mode != baseline:
            parts.append(
                f"{mode_name(mode)}, which learns from the real labels, reaches {_pct(share[mode])} of real "
                f"(set it against real+{mode}, not against {mode_name(baseline)})"
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
    note = _gap_note(numbers, best)
    if numbers.get("inconclusive"):
        bottom = _inconclusive(numbers, macro_f1)
    elif best_share >= NEAR_REAL:
        bottom = (
            f"Synthetic data ({mode_name(best)}) nearly replaces real labels for this task"
            + (f" ({note})" if note else "")
            + "."
        )
    elif best_share >= USABLE:
        bottom = (
            f"Synthetic data ({mode_name(best)}) is usable but costs {_pct(1 - best_share)} of Macro-F1"
            + (f" ({note})" if note else "")
            + "; real labels still pay off."
        )
    else:
        bottom = (
            f"Synthetic data is no substitute here (best: {mode_name(best)} at {_pct(best_share)} of "
            "real" + (f"; {note}" if note else "") + "); label real data."
        )
    text = text[0].upper() + text[1:]
    return f"{text} {bottom}" + (f" ({caveat})" if caveat else "")
