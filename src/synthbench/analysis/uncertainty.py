"""How sure a verdict can be: a 95% interval on each synthetic condition's gap to real, and whether the real
baseline is clearly above chance. The verdict (:mod:`synthbench.analysis.verdict`) turns these into
"inconclusive" when they do not support a conclusion.

The rule (Macro-F1 as fractions; the gap is real − synthetic, so positive = synthetic data is worse):

- **Test-set noise**: a paired bootstrap (:func:`synthbench.stats.paired_bootstrap`, percentile
  interval, :data:`N_RESAMPLES` resamples seeded with the study seed) of Macro-F1(real) − Macro-F1(mode) on
  the deployed seeds' predictions (``predictions.jsonl`` ``prediction``) of both conditions, which the evaluate
  stage wrote for the same test texts in the same order (checked text by text; a mismatch skips the bootstrap).
- **Seed noise**, when both conditions have ≥ 2 training seeds: Welch's 95% t-interval of the difference of
  the seed means (:func:`synthbench.stats.welch_interval`, per-seed scores from ``metrics.json``).
- The gap's interval is the **hull** of the two (the smallest interval holding both); the gap is conclusive
  only when the hull excludes zero, i.e. test-set and seed noise each leave its sign settled. This is
  deliberately conservative: it asks each source of noise alone to agree, rather than modelling them jointly.
  With one seed, seed noise is unmeasured and the verdict says so through its caveat.
- **Real above chance**: the real condition's lower 95% bound on Macro-F1, the lower of its bootstrap bound
  (deployed seed, test-set noise) and its seed t-interval bound (≥ 2 seeds), must exceed
  :func:`chance_macro_f1`: the Macro-F1 a uniform random guesser is expected to reach on this test set's label
  mix (1/K for K balanced labels). Otherwise there is no baseline to measure synthetic data against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from synthbench.data.io import read_jsonl
from synthbench.layout import Layout
from synthbench.records import EvaluationMetrics
from synthbench.stats import bootstrap_interval, paired_bootstrap, seed_summary, welch_interval

METHOD_NOTE = (  # the rule above in one line of the report's method section
    "Gap interval (real − synthetic Macro-F1, 95%) = the hull of a paired bootstrap over the test texts "
    "(deployed seeds' predictions) and, with ≥ 2 seeds, Welch's t-interval over seeds. A verdict is "
    "'inconclusive' when that interval includes zero (unless even its worst end costs at most 5% of real "
    "Macro-F1), or when the real model's lower 95% bound on Macro-F1 is not above chance (the expected "
    "Macro-F1 of guessing uniformly among the labels)."
)
N_RESAMPLES = 2000  # enough for a stable 95% percentile interval; a few ms per pair at a few hundred texts


def chance_macro_f1(supports: Mapping[str, int | float]) -> float | None:
    """Expected Macro-F1 (fraction) of guessing uniformly among the K labels, on a test set with these label
    counts (large-sample limit): per label, precision = its share p, recall = 1/K, so F1 = 2p / (Kp + 1);
    averaged over the K labels. Balanced labels give 1/K. None without labels or counts."""
    total = sum(supports.values())
    if not supports or not total:
        return None
    k = len(supports)
    shares = [count / total for count in supports.values()]
    return sum(2 * p / (k * p + 1) for p in shares) / k


def hull(*intervals: tuple[float, float] | None) -> tuple[float, float] | None:
    """The smallest interval holding every given one (None entries skipped); None when none is given."""
    present = [interval for interval in intervals if interval is not None]
    if not present:
        return None
    return min(low for low, _ in present), max(high for _, high in present)


def _seed_scores(metrics: EvaluationMetrics) -> list[float]:
    return [score.macro_f1 for score in metrics.seeds]


def real_lower_bound(
    metrics: EvaluationMetrics, rows: Sequence[Mapping[str, Any]] | None, seed: int
) -> float | None:
    """Lower 95% bound (fraction) of the real condition's Macro-F1: the lower of the bootstrap bound on the
    deployed seed's ``rows`` (predictions.jsonl) and the seed t-interval bound; None when neither exists."""
    bounds = []
    if rows:
        result = bootstrap_interval(
            [str(r["label"]) for r in rows],
            [str(r["prediction"]) for r in rows],
            n_resamples=N_RESAMPLES,
            seed=seed,
        )
        bounds.append(result["ci_low"])
    summary = seed_summary(_seed_scores(metrics), bounds=(0.0, 1.0))
    if summary["ci_low"] is not None:
        bounds.append(summary["ci_low"])
    return min(bounds) if bounds else None


def gap_interval(
    real: EvaluationMetrics,
    real_rows: Sequence[Mapping[str, Any]] | None,
    mode: EvaluationMetrics,
    mode_rows: Sequence[Mapping[str, Any]] | None,
    seed: int,
) -> tuple[float, float] | None:
    """95% interval (fractions) of Macro-F1(real) − Macro-F1(mode) by the module's rule; None when there are
    neither paired predictions nor ≥ 2 seeds on both sides."""
    bootstrap = None
    if real_rows and mode_rows and [r["text"] for r in real_rows] == [r["text"] for r in mode_rows]:
        result = paired_bootstrap(
            [str(r["label"]) for r in real_rows],
            [str(r["prediction"]) for r in real_rows],
            [str(r["prediction"]) for r in mode_rows],
            n_resamples=N_RESAMPLES,
            seed=seed,
        )
        bootstrap = (result["ci_low"], result["ci_high"])
    return hull(bootstrap, welch_interval(_seed_scores(real), _seed_scores(mode)))


def verdict_evidence(
    task: str,
    backbone: str,
    modes: Sequence[str],
    metrics: Mapping[str, EvaluationMetrics],
    layout: Layout,
    seed: int,
) -> dict[str, Any]:
    """Everything :func:`synthbench.analysis.verdict.verdict_numbers` needs to judge certainty, for one task and
    backbone, from ``metrics`` (condition → its evaluation) and the conditions' ``predictions.jsonl``.

    Returns:
        Keyword arguments for ``verdict_numbers``: ``gap_ci`` {mode: (low, high)} (modes without an interval
        are absent), ``real_macro_f1_low``, ``chance_macro_f1`` (fractions or None), ``n_seeds`` (the fewest
        seeds of any condition) and ``n_test``. Empty when the real condition was not evaluated.
    """
    if "real" not in metrics:
        return {}
    rows = {}
    for condition in ["real", *modes]:
        path = layout.predictions(task, condition, backbone)
        if condition in metrics and path.exists():
            rows[condition] = read_jsonl(path)
    real = metrics["real"]
    supports = {label: row.get("support", 0) for label, row in real.per_class.items()}
    if not any(supports.values()) and rows.get("real"):
        supports = dict(Counter(str(r["label"]) for r in rows["real"]))
    return {
        "gap_ci": {
            mode: interval
            for mode in modes
            if mode in metrics
            and (interval := gap_interval(real, rows.get("real"), metrics[mode], rows.get(mode), seed))
            is not None
        },
        "real_macro_f1_low": real_lower_bound(real, rows.get("real"), seed),
        "chance_macro_f1": chance_macro_f1(supports),
        "n_seeds": min(m.n_seeds for m in metrics.values()),
        "n_test": real.n_test,
    }
