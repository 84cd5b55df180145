from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from synthbench.analysis.subjectivity import (
    as_agreement,
    bradley_terry,
    instance_agreement,
    rank,
    read_comparisons_csv,
    star_levels,
    threshold_curve,
    trend,
)
from synthbench.errors import DataError

# ----------------------------------------------------------------------------------------------------
# Bradley–Terry
# ----------------------------------------------------------------------------------------------------

TRUE_STRENGTHS = {
    "ag_news": 1.0,
    "imdb": 2.0,
    "sms_spam": 3.0,
    "tweet_irony": 4.0,
    "sarcasm": 6.0,
    "humor": 8.0,
}


def simulate_comparisons(strengths: dict[str, float], n_pairs: int, seed: int) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(seed)
    names = list(strengths)
    comparisons = []
    for _ in range(n_pairs):
        i, j = rng.choice(len(names), size=2, replace=False)
        a, b = names[i], names[j]
        p_a_wins = strengths[a] / (strengths[a] + strengths[b])
        comparisons.append((a, b, a if rng.random() < p_a_wins else b))
    return comparisons


def test_bradley_terry_recovers_known_ranking_and_strengths():
    comparisons = simulate_comparisons(TRUE_STRENGTHS, n_pairs=3000, seed=0)
    fitted = bradley_terry(comparisons)

    names = list(TRUE_STRENGTHS)
    true = np.array([TRUE_STRENGTHS[name] for name in names])
    recovered = np.array([fitted[name] for name in names])
    assert stats.spearmanr(true, recovered).statistic == pytest.approx(1.0)
    assert recovered.sum() == pytest.approx(1.0)
    # 3,000 judgements over 15 pairs (~200 each): strengths within 0.03 (absolute, on the sum-to-1 scale).
    np.testing.assert_allclose(recovered, true / true.sum(), atol=0.03)


def test_bradley_terry_two_items_three_wins_of_four():
    comparisons = [("a", "b", "a")] * 3 + [("b", "a", "b")]
    plain = bradley_terry(comparisons, prior=0)
    assert plain["a"] / (plain["a"] + plain["b"]) == pytest.approx(0.75, abs=1e-9)
    assert plain["a"] + plain["b"] == pytest.approx(1.0)

    # The default prior (0.5 won + 0.5 lost pseudo-games against a virtual item) shrinks a little towards 0.5.
    shrunk = bradley_terry(comparisons)
    assert 0.70 < shrunk["a"] / (shrunk["a"] + shrunk["b"]) < 0.75


def test_bradley_terry_is_the_maximum_of_the_penalised_likelihood():
    comparisons = simulate_comparisons(TRUE_STRENGTHS, n_pairs=300, seed=1)
    prior = 0.5
    names = list(TRUE_STRENGTHS)
    index = {name: k for k, name in enumerate(names)}

    def negative_log_likelihood(log_s: np.ndarray) -> float:
        # Real games, then prior won + prior lost games against a virtual item of strength 1 (log 0).
        total = 0.0
        for a, b, winner in comparisons:
            loser = b if winner == a else a
            total += np.logaddexp(log_s[index[winner]], log_s[index[loser]]) - log_s[index[winner]]
        total += prior * np.sum(2 * np.logaddexp(log_s, 0.0) - log_s)
        return total

    best = optimize.minimize(
        negative_log_likelihood, np.zeros(len(names)), method="BFGS", options={"gtol": 1e-9}
    )
    expected = np.exp(best.x) / np.exp(best.x).sum()
    fitted = bradley_terry(comparisons, prior=prior)
    np.testing.assert_allclose([fitted[name] for name in names], expected, atol=1e-5)


def test_bradley_terry_item_that_never_wins_gets_small_positive_strength():
    comparisons = [("a", "b", "a"), ("a", "c", "a"), ("b", "c", "b"), ("c", "b", "b"), ("a", "b", "b")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # also proves convergence: no RuntimeWarning
        fitted = bradley_terry(comparisons)
    assert 0 < fitted["c"] < min(fitted["a"], fitted["b"])
    with pytest.raises(ValueError, match="win and lose at least once"):
        bradley_terry(comparisons, prior=0)


def test_bradley_terry_rejects_bad_input():
    with pytest.raises(ValueError, match="neither"):
        bradley_terry([("a", "b", "c")])
    with pytest.raises(ValueError, match="with itself"):
        bradley_terry([("a", "a", "a")])
    with pytest.raises(ValueError, match="at least 2 items"):
        bradley_terry([])
    with pytest.raises(ValueError, match="prior"):
        bradley_terry([("a", "b", "a")], prior=-1)


def test_bradley_terry_warns_when_iterations_run_out():
    with pytest.warns(RuntimeWarning, match="did not converge"):
        bradley_terry(simulate_comparisons(TRUE_STRENGTHS, n_pairs=100, seed=2), max_iter=2)


# ----------------------------------------------------------------------------------------------------
# Reading comparisons, ranks and stars
# ----------------------------------------------------------------------------------------------------


def test_read_comparisons_csv_reads_rows_and_ignores_annotator(tmp_path):
    path = tmp_path / "comparisons.csv"
    path.write_text("annotator,task_a,task_b,winner\nw1,imdb, humor ,humor\nw2,ag_news,imdb,imdb\n")
    assert read_comparisons_csv(path) == [("imdb", "humor", "humor"), ("ag_news", "imdb", "imdb")]


def test_read_comparisons_csv_names_file_and_missing_column(tmp_path):
    path = tmp_path / "comparisons.csv"
    path.write_text("task_a,task_b,annotator\nimdb,humor,w1\n")
    with pytest.raises(DataError, match=r"comparisons\.csv: missing column 'winner'") as error:
        read_comparisons_csv(path)
    assert "\n" not in str(error.value)


def test_read_comparisons_csv_rejects_winner_outside_pair_and_missing_file(tmp_path):
    path = tmp_path / "comparisons.csv"
    path.write_text("task_a,task_b,winner\nimdb,humor,sarcasm\n")
    with pytest.raises(DataError, match="line 2: winner 'sarcasm'"):
        read_comparisons_csv(path)
    with pytest.raises(DataError, match="not found"):
        read_comparisons_csv(tmp_path / "absent.csv")


def test_rank_orders_from_most_objective():
    assert rank({"humor": 0.5, "ag_news": 0.1, "imdb": 0.4}) == {"ag_news": 1, "imdb": 2, "humor": 3}


def test_star_levels_bin_ten_tasks_two_per_level():
    scores = {f"task{k}": float(k) for k in range(10)}
    assert star_levels(scores) == {f"task{k}": 1 + k // 2 for k in range(10)}


def test_star_levels_ties_share_a_level_and_small_sets_spread():
    assert star_levels({"a": 0.2, "b": 0.2, "c": 0.6}, n_levels=3) == {"a": 1, "b": 1, "c": 3}
    assert star_levels({"a": 0.1, "b": 0.9}) == {"a": 1, "b": 3}


# ----------------------------------------------------------------------------------------------------
# Instance level
# ----------------------------------------------------------------------------------------------------


def test_instance_agreement_is_share_of_most_popular_label():
    votes = [
        ["pos", "pos", "pos"],
        ["pos", "neg", "pos"],
        ["pos", "neg", "neu"],
        ["neg", "neg", "pos", "pos"],
    ]
    np.testing.assert_allclose(instance_agreement(votes), [1.0, 2 / 3, 1 / 3, 0.5])


def test_instance_agreement_rejects_empty_votes():
    with pytest.raises(ValueError, match="no votes"):
        instance_agreement([["pos"], []])


def test_as_agreement_validates_precomputed_values():
    np.testing.assert_array_equal(as_agreement([0.5, 1.0]), [0.5, 1.0])
    with pytest.raises(ValueError, match=r"instance 1 has 1\.5"):
        as_agreement([0.5, 1.5])


def test_threshold_curve_on_hand_data():
    y_true = ["pos", "pos", "neg", "neg", "neu", "pos"]
    y_pred = ["pos", "neg", "neg", "pos", "pos", "pos"]
    agreement = [1.0, 0.5, 1.0, 0.66, 0.5, 0.75]
    curve = threshold_curve(y_true, y_pred, agreement, [0.5, 0.7, 1.0, 1.01])

    # γ=0.5: all 6, correct at 0, 2, 5 → accuracy 3/6.
    # pos: tp 2 (0, 5), fp 2 (3, 4), fn 1 (1) → F1 = 4/7; neg: tp 1, fp 1 (1), fn 1 (3) → 1/2; neu: 0.
    assert curve[0] == pytest.approx(
        {"threshold": 0.5, "n": 6, "accuracy": 0.5, "macro_f1": (4 / 7 + 1 / 2 + 0) / 3}
    )
    # γ=0.7: rows 0, 2, 5, all correct; labels present in y_true: pos, neg → both F1 = 1.
    assert curve[1] == pytest.approx({"threshold": 0.7, "n": 3, "accuracy": 1.0, "macro_f1": 1.0})
    # γ=1.0: rows 0 and 2.
    assert curve[2] == pytest.approx({"threshold": 1.0, "n": 2, "accuracy": 1.0, "macro_f1": 1.0})
    # Nothing reaches 1.01: reported, not dropped, with no metrics.
    assert curve[3] == {"threshold": 1.01, "n": 0, "accuracy": None, "macro_f1": None}


def test_threshold_curve_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        threshold_curve(["a", "b"], ["a"], [1.0, 1.0], [0.5])


def test_trend_matches_scipy_on_known_data():
    thresholds = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    accuracy = np.array([0.71, 0.74, 0.73, 0.80, 0.84, 0.90])
    result = trend(thresholds, accuracy)

    line = stats.linregress(thresholds, accuracy)
    spearman = stats.spearmanr(thresholds, accuracy)
    assert result["slope"] == pytest.approx(line.slope)
    assert result["intercept"] == pytest.approx(line.intercept)
    assert result["r2"] == pytest.approx(line.rvalue**2)
    assert result["spearman_rho"] == pytest.approx(spearman.statistic)
    assert result["spearman_p"] == pytest.approx(spearman.pvalue)
    # Hand check: one swap (0.74 > 0.73) among 6 ranks → rho = 1 - 6·(1+1)/(6·35) = 33/35.
    assert result["spearman_rho"] == pytest.approx(33 / 35)
    assert result["n"] == 6


def test_trend_on_an_exact_line():
    result = trend([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 5.0, 7.0])
    assert result["slope"] == pytest.approx(2.0)
    assert result["intercept"] == pytest.approx(1.0)
    assert result["r2"] == pytest.approx(1.0)
    assert result["spearman_rho"] == pytest.approx(1.0)


def test_trend_rejects_too_few_or_missing_points():
    with pytest.raises(ValueError, match="at least 3"):
        trend([0.5, 1.0], [0.7, 0.9])
    with pytest.raises(ValueError, match="finite"):
        trend([0.5, 0.7, 1.0], [0.7, float("nan"), 0.9])
