"""Evaluation arithmetic on data with known answers: paired bootstrap, seed intervals, calibration, per-class
report; and the evaluate stage's label check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from factories import evaluate_stage, training_manifest
from synthbench.config import Params
from synthbench.errors import DataError
from synthbench.evaluation.metrics import classification_metrics, expected_calibration_error
from synthbench.stats import (
    bootstrap_interval,
    metric_value,
    paired_bootstrap,
    seed_summary,
    welch_interval,
)


def test_paired_bootstrap_of_identical_predictions_is_zero_with_p_one() -> None:
    y = ["a", "b", "c", "a"] * 10
    pred = ["a", "b", "b", "c"] * 10
    result = paired_bootstrap(y, pred, pred, n_resamples=500, seed=0)
    assert result["diff"] == 0.0 and result["ci_low"] == 0.0 and result["ci_high"] == 0.0
    assert result["p_value"] == 1.0


def test_paired_bootstrap_of_perfect_against_all_wrong_is_certain() -> None:
    y = ["pos", "neg"] * 25
    wrong = ["neg", "pos"] * 25
    result = paired_bootstrap(y, y, wrong, metric="accuracy", n_resamples=999, seed=0)
    assert result["diff"] == 1.0 and result["ci_low"] == 1.0 and result["ci_high"] == 1.0
    assert result["p_value"] == pytest.approx(1 / 1000)


def test_paired_bootstrap_accuracy_interval_matches_the_normal_approximation() -> None:
    # 1000 examples: a is right on 800, b on 700; they disagree on 300 (a right on 200 of them, b on 100).
    n = 1000
    y = ["x"] * n
    a_right = np.zeros(n, bool)
    b_right = np.zeros(n, bool)
    a_right[:600] = b_right[:600] = True  # both right
    a_right[600:800] = True  # only a right
    b_right[800:900] = True  # only b right
    a = ["x" if ok else "y" for ok in a_right]
    b = ["x" if ok else "y" for ok in b_right]
    result = paired_bootstrap(y, a, b, metric="accuracy", n_resamples=4000, seed=1)
    d = a_right.astype(float) - b_right.astype(float)
    se = d.std() / math.sqrt(n)
    assert result["diff"] == pytest.approx(0.1)
    assert result["ci_low"] == pytest.approx(0.1 - 1.96 * se, abs=0.006)
    assert result["ci_high"] == pytest.approx(0.1 + 1.96 * se, abs=0.006)
    assert result["p_value"] < 0.001
    assert paired_bootstrap(y, a, b, metric="accuracy", n_resamples=4000, seed=1) == result  # seeded


def test_bootstrap_macro_f1_is_sklearns_macro_f1() -> None:
    rng = np.random.default_rng(0)
    labels = np.array(["business", "sport", "tech", "politics"])
    y = labels[rng.integers(0, 4, 300)]
    pred = np.where(rng.random(300) < 0.7, y, labels[rng.integers(0, 4, 300)])
    assert metric_value(list(y), list(pred)) == pytest.approx(f1_score(y, pred, average="macro"))
    assert metric_value(list(y), list(pred), "accuracy") == pytest.approx(float(np.mean(y == pred)))
    with pytest.raises(ValueError, match="metric must be one of"):
        paired_bootstrap(list(y), list(pred), list(pred), metric="f1")


def test_bootstrap_interval_of_one_system() -> None:
    y = ["x"] * 1000
    pred = ["x"] * 800 + ["y"] * 200  # accuracy 0.8, binomial se = sqrt(0.8 · 0.2 / 1000)
    result = bootstrap_interval(y, pred, metric="accuracy", n_resamples=4000, seed=1)
    se = math.sqrt(0.8 * 0.2 / 1000)
    assert result["value"] == pytest.approx(0.8)
    assert result["ci_low"] == pytest.approx(0.8 - 1.96 * se, abs=0.005)
    assert result["ci_high"] == pytest.approx(0.8 + 1.96 * se, abs=0.005)
    perfect = bootstrap_interval(["a", "b"] * 10, ["a", "b"] * 10, n_resamples=200, seed=0)
    assert (perfect["value"], perfect["ci_low"], perfect["ci_high"]) == (1.0, 1.0, 1.0)
    assert bootstrap_interval(y, pred, metric="accuracy", n_resamples=4000, seed=1) == result  # seeded
    with pytest.raises(ValueError, match="same length"):
        bootstrap_interval(["a"], ["a", "b"])


def test_welch_interval_is_scipys_welch_t_interval() -> None:
    a, b = [0.80, 0.90, 1.00], [0.70, 0.75, 0.80, 0.72]
    expected = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert welch_interval(a, b) == pytest.approx((expected.low, expected.high))
    assert welch_interval([0.5], b) is None
    assert welch_interval([0.6, 0.6], [0.5, 0.5]) == pytest.approx((0.1, 0.1))  # no spread: the point


def test_seed_summary_is_mean_sample_std_and_student_t_interval() -> None:
    summary = seed_summary([0.80, 0.82, 0.78])
    assert summary["mean"] == pytest.approx(0.80) and summary["std"] == pytest.approx(0.02)
    half = 4.302653 * 0.02 / math.sqrt(3)  # t(0.975, df=2)
    assert summary["ci_low"] == pytest.approx(0.80 - half, abs=1e-6)
    assert summary["ci_high"] == pytest.approx(0.80 + half, abs=1e-6)
    assert seed_summary([0.5]) == {"mean": 0.5, "std": None, "ci_low": None, "ci_high": None, "n": 1}
    clipped = seed_summary([0.98, 1.0], bounds=(0.0, 1.0))
    assert clipped["ci_high"] == 1.0 and clipped["ci_low"] < 0.98


def test_expected_calibration_error_on_known_bins() -> None:
    # 10 predictions at confidence 0.8: 8 right → calibrated (ECE 0); all 10 right → ECE 0.2
    proba = np.tile([0.8, 0.2], (10, 1))
    eight_right = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(proba, eight_right) == pytest.approx(0.0)
    assert expected_calibration_error(proba, np.zeros(10, int)) == pytest.approx(0.2)
    # two bins, half the mass each: conf 0.6 with 100% right (gap .4), conf 0.9 with 50% right (gap .4)
    mixed = np.array([[0.6, 0.4]] * 2 + [[0.9, 0.1]] * 2)
    assert expected_calibration_error(mixed, np.array([0, 0, 0, 1])) == pytest.approx(0.4)


def test_per_class_report_and_confusion_orientation() -> None:
    report = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert report["confusion_matrix"] == {"labels": ["a", "b"], "matrix": [[1, 1], [0, 2]]}  # row = true
    assert report["per_class"]["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert report["accuracy"] == 0.75


def test_evaluate_rejects_test_labels_the_model_does_not_know(tmp_path: Path) -> None:
    training_manifest("rotten_tomatoes", "real", "minilm-l6", labels=["fresh", "rotten"]).write(
        tmp_path / "models/rotten_tomatoes/real/minilm-l6/training.json"
    )
    test = tmp_path / "data/real/rotten_tomatoes/test.jsonl"
    test.parent.mkdir(parents=True)
    test.write_text(json.dumps({"text": "meh", "label": "neutral"}) + "\n")
    params = Params.model_validate({"tasks": ["rotten_tomatoes"]})
    with pytest.raises(DataError) as caught:
        evaluate_stage("rotten_tomatoes", "real", "minilm-l6", params, tmp_path)
    message = str(caught.value)
    assert "test.jsonl" in message and "['neutral']" in message and "['fresh', 'rotten']" in message
    assert "re-run prepare and train" in message and "\n" not in message


def test_saved_scores_are_used_only_for_the_same_texts_labels_and_seed(tmp_path: Path) -> None:
    from synthbench.classifier import load_scores, save_scores

    texts, labels = ["a good film", "a bad film", "a film"], ["fresh", "rotten"]
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    path = tmp_path / "test_scores.npz"
    assert load_scores(path, texts, labels, 0) is None  # no file yet
    save_scores(path, texts, labels, {0: proba, 3: proba[:, ::-1]})
    assert [p.name for p in tmp_path.iterdir()] == ["test_scores.npz"]  # no temporary file left
    np.testing.assert_array_equal(load_scores(path, texts, labels, 0), proba)
    np.testing.assert_array_equal(load_scores(path, texts, labels, 3), proba[:, ::-1])
    assert load_scores(path, texts, labels, 1) is None  # a seed it never scored
    assert load_scores(path, [*texts[:2], "another film"], labels, 0) is None  # another test set
    assert load_scores(path, texts[::-1], labels, 0) is None  # the same texts in another order
    assert load_scores(path, texts, labels[::-1], 0) is None  # another label order
