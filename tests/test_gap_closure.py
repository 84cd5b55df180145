"""The share of the zero-shot → real gap a strategy closes, and when that share means nothing (issue 13).

Constructed predictions on 200 balanced test texts; each predictor gets a known number of texts per label wrong,
so Macro-F1 (and the verdict) is known by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sklearn.metrics import f1_score

from factories import evaluation_metrics
from synthbench.analysis.gap_closure import closure_verdict, gap_closure
from synthbench.data.io import write_jsonl
from synthbench.layout import Layout

TRUTH = ["a"] * 100 + ["b"] * 100


def predictor(wrong_per_label: int) -> list[str]:
    """Gets the first ``wrong_per_label`` texts of each label wrong (nested: a better one errs on a subset)."""
    flip = {"a": "b", "b": "a"}
    return [flip[y] if i % 100 < wrong_per_label else y for i, y in enumerate(TRUTH)]


def write_condition(layout: Layout, condition: str, predictions: list[str], jitter: float = 0.01) -> float:
    """Predictions and a 3-seed metrics.json around their Macro-F1; returns that Macro-F1."""
    score = float(f1_score(TRUTH, predictions, average="macro"))
    texts = [f"text {i}" for i in range(len(TRUTH))]
    path = layout.predictions("t", condition, "b")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = zip(texts, TRUTH, predictions, strict=True)
    write_jsonl(path, [{"text": x, "label": y, "prediction": p} for x, y, p in rows])
    seeds = [score - jitter, score, score + jitter]
    evaluation_metrics("t", condition, "b", seeds, n_test=len(TRUTH)).write(
        layout.metrics("t", condition, "b")
    )
    return score


def study(tmp_path: Path, real: int, zero_shot: int, mode: int) -> tuple[Layout, dict[str, float]]:
    layout = Layout(tmp_path)
    scores = {
        name: write_condition(layout, name, predictor(wrong))
        for name, wrong in (("real", real), ("zero_shot", zero_shot), ("few_shot", mode))
    }
    return layout, scores


def test_a_strategy_that_closes_most_of_a_clear_gap(tmp_path: Path) -> None:
    layout, f1 = study(tmp_path, real=10, zero_shot=40, mode=15)
    closure = gap_closure(layout, "t", "few_shot", "b", seed=0, n_resamples=500)
    expected = (f1["few_shot"] - f1["zero_shot"]) / (f1["real"] - f1["zero_shot"])
    assert closure.point == pytest.approx(expected)
    assert 0.8 < closure.point < 0.9
    assert 0 < closure.low < closure.point < closure.high
    assert closure.dropped == 0
    assert closure.chance == pytest.approx(0.5)
    assert closure.baseline_gap is not None and closure.baseline_gap[0] > 0
    assert closure.verdict == "closes ≥ 50% (interval > 0)"


def test_no_better_than_zero_shot_is_not_shown_to_help(tmp_path: Path) -> None:
    layout, _ = study(tmp_path, real=10, zero_shot=40, mode=40)
    closure = gap_closure(layout, "t", "few_shot", "b", seed=0, n_resamples=500)
    assert closure.point == pytest.approx(0.0)
    assert closure.low < 0 < closure.high or closure.low == pytest.approx(0.0)
    assert closure.verdict == "not shown to help"


def test_a_real_model_at_chance_makes_any_fraction_inconclusive(tmp_path: Path) -> None:
    # real 48% right, zero-shot 40%: the mode "closes" 150% of a gap that is not there
    layout, _ = study(tmp_path, real=48, zero_shot=60, mode=46)
    closure = gap_closure(layout, "t", "few_shot", "b", seed=0, n_resamples=500)
    assert closure.point > 1
    assert closure.real_low is not None and closure.real_low <= 0.5
    assert closure.verdict.startswith("inconclusive: real is not clearly above chance")


def test_real_no_better_than_zero_shot_is_inconclusive(tmp_path: Path) -> None:
    layout, _ = study(tmp_path, real=20, zero_shot=21, mode=15)
    closure = gap_closure(layout, "t", "few_shot", "b", seed=0, n_resamples=500)
    assert closure.baseline_gap is not None and closure.baseline_gap[0] <= 0
    assert closure.verdict.startswith("inconclusive: real is not clearly above zero-shot")


def test_predictions_on_other_texts_are_refused(tmp_path: Path) -> None:
    layout, _ = study(tmp_path, real=10, zero_shot=40, mode=15)
    path = layout.predictions("t", "few_shot", "b")
    write_jsonl(path, [{"text": "other", "label": "a", "prediction": "a"}] * len(TRUTH))
    with pytest.raises(ValueError, match="not on the same test texts"):
        gap_closure(layout, "t", "few_shot", "b", seed=0, n_resamples=50)


def test_a_gain_of_the_deployed_seeds_alone_is_not_shown_to_help(tmp_path: Path) -> None:
    # the deployed seeds' predictions differ a lot (bootstrap interval > 0), but over seeds the mode is no better
    layout = Layout(tmp_path)
    write_condition(layout, "real", predictor(10))
    for name, wrong, seeds in (("zero_shot", 40, [0.60, 0.70, 0.50]), ("few_shot", 20, [0.75, 0.45, 0.60])):
        write_condition(layout, name, predictor(wrong))
        evaluation_metrics("t", name, "b", seeds, n_test=len(TRUTH)).write(layout.metrics("t", name, "b"))
    closure = gap_closure(layout, "t", "few_shot", "b", seed=0, n_resamples=500)
    assert closure.low > 0
    assert closure.seed_gain is not None and closure.seed_gain[0] < 0 < closure.seed_gain[1]
    assert closure.verdict == "not shown to help"


@pytest.mark.parametrize(
    ("point", "low", "real_low", "chance", "baseline_gap", "verdict"),
    [
        (0.6, 0.1, 0.8, 0.5, (0.1, 0.3), "closes ≥ 50% (interval > 0)"),
        (0.4, 0.1, 0.8, 0.5, (0.1, 0.3), "helps (interval > 0)"),
        (0.6, -0.1, 0.8, 0.5, (0.1, 0.3), "not shown to help"),
        (0.6, math.nan, 0.8, 0.5, (0.1, 0.3), "not shown to help"),
        (0.6, 0.1, 0.5, 0.5, (0.1, 0.3), "inconclusive: real is not clearly above chance"),
        (0.6, 0.1, 0.8, 0.5, (0.0, 0.3), "inconclusive: real is not clearly above zero-shot"),
        (0.6, 0.1, 0.8, 0.5, None, "inconclusive: real is not clearly above zero-shot"),
        (0.6, 0.1, None, None, (0.1, 0.3), "closes ≥ 50% (interval > 0)"),
    ],
)
def test_verdict_rule(
    point: float,
    low: float,
    real_low: float | None,
    chance: float | None,
    baseline_gap: tuple[float, float] | None,
    verdict: str,
) -> None:
    assert closure_verdict(point, low, real_low, chance, baseline_gap).startswith(verdict)
