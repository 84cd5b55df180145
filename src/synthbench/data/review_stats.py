"""What the reviews say: human reject rate per label and reason, and the label-noise rate with its interval.

The label-noise estimate is the share of reviewed rows judged ``wrong_label`` (the text belongs to the task but
not to its intended label), with a **Wilson score interval** (95%): unlike the normal approximation it stays
inside [0, 1] and keeps close to nominal coverage at the small n (tens of rows) and rates near 0 a review gives
(Brown, Cai & DasGupta 2001). The sample is stratified by label in proportion to the synthetic file, so the
pooled share estimates the rate of the whole file. Only decisions on texts still present in the current
synthetic file count: a verdict on a text that a regeneration removed says nothing about today's data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthbench.data.reviews import REJECTS, WRONG_LABEL, Decision, content_hash

Z_95 = 1.959963984540054  # standard normal 97.5% quantile


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (fractions in [0, 1]); (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class ReviewStats:
    """Counts of one task/mode's review. Rates are fractions in [0, 1] of the reviewed rows (None when none)."""

    task: str
    mode: str
    n_rows: int  # rows in the synthetic file
    n_reviewed: int  # of them, rows with a decision
    by_label: dict[str, Counter[str]] = field(default_factory=dict)  # intended label → verdict → count
    n_stale: int = 0  # decisions on texts no longer in the synthetic file (ignored)

    @property
    def n_rejected(self) -> int:
        return sum(counts[v] for counts in self.by_label.values() for v in REJECTS)

    @property
    def reject_rate(self) -> float | None:
        return self.n_rejected / self.n_reviewed if self.n_reviewed else None

    @property
    def n_wrong_label(self) -> int:
        return sum(counts[WRONG_LABEL] for counts in self.by_label.values())

    @property
    def label_noise(self) -> tuple[float | None, float, float]:
        """(estimate, lower, upper) of the wrong-label rate; Wilson 95% interval."""
        low, high = wilson_interval(self.n_wrong_label, self.n_reviewed)
        return (self.n_wrong_label / self.n_reviewed if self.n_reviewed else None), low, high

    def label_rows(self) -> list[dict[str, Any]]:
        """One dict per label: reviewed, rejected, reject_rate and a count per reject reason."""
        rows = []
        for label, counts in self.by_label.items():
            reviewed = sum(counts.values())
            rejected = sum(counts[v] for v in REJECTS)
            rows.append(
                {
                    "label": label,
                    "reviewed": reviewed,
                    "rejected": rejected,
                    "reject_rate": rejected / reviewed if reviewed else None,
                    **{reason: counts[reason] for reason in REJECTS},
                }
            )
        return rows

    def as_dict(self) -> dict[str, Any]:
        estimate, low, high = self.label_noise
        return {
            "task": self.task,
            "mode": self.mode,
            "n_rows": self.n_rows,
            "n_reviewed": self.n_reviewed,
            "n_rejected": self.n_rejected,
            "reject_rate": self.reject_rate,
            "n_stale": self.n_stale,
            "label_noise": {"estimate": estimate, "low": low, "high": high, "interval": "Wilson 95%"},
            "by_label": self.label_rows(),
        }


def review_stats(
    task: str,
    mode: str,
    rows: Sequence[dict[str, Any]],
    decisions: dict[str, Decision],
    labels: Iterable[str],
) -> ReviewStats:
    """Tally ``decisions`` over the synthetic ``rows`` (dicts with ``text`` and ``label``); each text counts once."""
    by_label: dict[str, Counter[str]] = {label: Counter() for label in labels}
    present: set[str] = set()
    for row in rows:
        key = content_hash(row["text"])
        if key in present:
            continue
        present.add(key)
        decision = decisions.get(key)
        if decision is not None:
            by_label.setdefault(decision.label, Counter())[decision.verdict] += 1
    reviewed = sum(sum(counts.values()) for counts in by_label.values())
    return ReviewStats(
        task=task,
        mode=mode,
        n_rows=len(rows),
        n_reviewed=reviewed,
        by_label=by_label,
        n_stale=len(set(decisions) - present),
    )


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def describe_noise(stats: ReviewStats) -> str:
    """One sentence: the label-noise estimate with its interval, or why there is none."""
    estimate, low, high = stats.label_noise
    if estimate is None:
        return f"{stats.task}/{stats.mode}: no reviewed rows yet."
    return (
        f"{stats.task}/{stats.mode}: label noise {percent(estimate)} (Wilson 95% interval "
        f"{percent(low)}–{percent(high)}; {stats.n_wrong_label} wrong-label of {stats.n_reviewed} reviewed rows "
        f"out of {stats.n_rows}); human reject rate {percent(stats.reject_rate)}."
    )
