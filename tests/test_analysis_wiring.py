"""The analyze stage's wiring, one behaviour per test, on inputs whose answers are known: seeds in metrics,
the verdict's edge cases, task-level subjectivity and the gap correlation, annotation layouts (and the shared
Financial PhraseBank file), the embedding cache and size-matched diversity, training histories, report
rendering, and the ``analysis`` params section."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from factories import evaluation_metrics, training_manifest
from synthbench.analysis.curves import history_rows, wide_table
from synthbench.analysis.diversity import chamfer, remote_clique
from synthbench.analysis.embeddings import cached_embeddings, diversity_table, embedding_fingerprint
from synthbench.analysis.instance import agreement_curves, read_annotations
from synthbench.analysis.report import Figure, Heading, Paragraph, Table, to_html, to_markdown
from synthbench.analysis.settings import AnalysisSettings, analysis_settings
from synthbench.analysis.summary import summary_table
from synthbench.analysis.tasklevel import (
    describe_correlation,
    gap_correlations,
    subjectivity_measure,
    task_subjectivity,
)
from synthbench.analysis.uncertainty import chance_macro_f1, gap_interval, hull, verdict_evidence
from synthbench.analysis.verdict import verdict_numbers, verdict_sentence
from synthbench.data.sources import normalise_text
from synthbench.errors import ConfigError, DataError
from synthbench.layout import Layout
from synthbench.stats import paired_bootstrap

PHRASEBANK = Path(__file__).resolve().parents[2] / "shared" / "data" / "financial_phrasebank"

# ----------------------------------------------------------------------------------------------------
# Seeds, verdict
# ----------------------------------------------------------------------------------------------------


def test_summary_table_reads_the_evaluation_records():
    metrics = [
        evaluation_metrics("t", "real", "b", [0.7, 0.9]),
        evaluation_metrics("t", "zero_shot", "b", [0.6]),
    ]
    table = summary_table(metrics).set_index("condition")
    assert table.loc["real", "macro_f1"] == pytest.approx(0.8) and table.loc["real", "n_seeds"] == 2
    assert table.loc["real", "macro_f1_std"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert (
        pd.isna(table.loc["zero_shot", "macro_f1_std"])
        and table.loc["zero_shot", "macro_f1_gap_pts"] == -20.0
    )


def test_verdict_when_zero_shot_already_matches_real():
    f1 = {"real": 0.80, "zero_shot": 0.82, "few_shot": 0.81}
    numbers = verdict_numbers(f1, ["zero_shot", "few_shot"])
    assert numbers["gap_closed"] == {"few_shot": None}
    text = verdict_sentence(numbers, f1)
    assert "reaches 103% of real-data Macro-F1" in text
    assert "zero-shot already matches real data, so few-shot has no gap to close" in text
    assert "nearly replaces real labels" in text


def test_verdict_when_few_shot_is_worse_and_zero_shot_is_trivial():
    f1 = {"real": 0.80, "zero_shot": 0.40, "few_shot": 0.30}
    numbers = verdict_numbers(
        f1,
        ["zero_shot", "few_shot"],
        {"zero_shot": 0.5, "few_shot": 0.25},
        accuracy={"real": 0.8, "zero_shot": 0.5, "few_shot": 0.55},
        majority_accuracy=0.5,
    )
    assert numbers["gap_closed"] == {"few_shot": pytest.approx(-0.25)}
    assert numbers["no_better_than_majority"] == ["zero_shot"]
    text = verdict_sentence(numbers, f1, "one training seed")
    assert "few-shot does worse than zero-shot: it widens the gap by 25% (reaching 38% of real)" in text
    assert "diversity (Remote-Clique) is 0.50× real for zero-shot, 0.25× real for few-shot" in text
    assert (
        "zero-shot is no more accurate than always predicting the most frequent label (50% accuracy)" in text
    )
    assert text.endswith("label real data. (one training seed)")


def test_targeted_is_not_credited_with_closing_the_zero_shot_gap():
    f1 = {"real": 0.80, "zero_shot": 0.40, "targeted": 0.76, "few_shot": 0.60}
    numbers = verdict_numbers(f1, ["targeted", "zero_shot", "few_shot"])
    assert numbers["baseline"] == "zero_shot"
    assert numbers["gap_closed"] == {"few_shot": pytest.approx(0.5)}
    assert numbers["share_of_real"]["targeted"] == pytest.approx(0.95)
    text = verdict_sentence(numbers, f1)
    assert (
        "targeted, which learns from the real labels, reaches 95% of real (set it against real+targeted"
        in text
    )
    assert "targeted closes" not in text


def test_verdict_with_one_mode_and_no_real():
    numbers = verdict_numbers({"real": 0.5, "few_shot": 0.45}, ["zero_shot", "few_shot"])
    assert numbers["baseline"] == "few_shot" and numbers["gap_closed"] == {}
    assert "Few-shot synthetic data reaches 90% of real-data Macro-F1" in verdict_sentence(
        numbers, {"real": 0.5, "few_shot": 0.45}
    )
    assert verdict_sentence(
        verdict_numbers({"zero_shot": 0.5}, ["zero_shot"]), {"zero_shot": 0.5}
    ).startswith("No verdict")


# The run: 5 labels, 40 test texts, one seed, real Macro-F1 33.8%, zero-shot 29.8%.
NEAR_CHANCE_F1 = {"real": 0.338, "zero_shot": 0.298}


def test_verdict_is_inconclusive_when_real_is_not_clearly_above_chance():
    numbers = verdict_numbers(
        NEAR_CHANCE_F1,
        ["zero_shot"],
        gap_ci={"zero_shot": (0.01, 0.08)},  # even a gap that excludes zero: there is no baseline to trust
        real_macro_f1_low=0.19,
        chance_macro_f1=0.2,
        n_seeds=1,
        n_test=40,
    )
    assert numbers["real_above_chance"] is False and numbers["inconclusive"] is True
    assert numbers["inconclusive_reason"] == "real_near_chance"
    text = verdict_sentence(numbers, NEAR_CHANCE_F1, "one training seed, 40 test texts")
    assert "usable but costs" not in text
    assert (
        "Inconclusive: the real-data model is not clearly above chance (Macro-F1 33.8, lower 95% bound 19.0; "
        "guessing uniformly among the labels scores 20.0)" in text
    )
    assert (
        "more test texts (prepare.test_per_label; 40 in all now), more training seeds (train.seeds; 1 now) or "
        "more real training rows (prepare.train_per_label) would settle it." in text
    )


def test_verdict_is_inconclusive_when_the_gap_interval_includes_zero():
    numbers = verdict_numbers(
        NEAR_CHANCE_F1,
        ["zero_shot"],
        gap_ci={"zero_shot": (-0.031, 0.110)},
        real_macro_f1_low=0.25,
        chance_macro_f1=0.2,
        n_seeds=1,
        n_test=40,
    )
    assert numbers["gap"] == {"zero_shot": pytest.approx(0.04)}
    assert numbers["gap_ci"] == {"zero_shot": [-0.031, 0.110]}
    assert numbers["real_above_chance"] is True and numbers["inconclusive_reason"] == "gap_includes_zero"
    text = verdict_sentence(numbers, NEAR_CHANCE_F1, "one training seed, 40 test texts")
    # Before: "Synthetic data (zero-shot) is usable but costs 12% of Macro-F1; real labels still pay off."
    assert "usable but costs" not in text
    assert text.startswith("Zero-shot synthetic data reaches 88% of real-data Macro-F1 (29.8 vs 33.8).")
    assert (
        "Inconclusive: the real − zero-shot gap of +4.0 Macro-F1 points has a 95% interval [-3.1, +11.0] that "
        "includes zero" in text
    )
    assert numbers["settle"] == (
        "more test texts (prepare.test_per_label; 40 in all now), more training seeds (train.seeds; 1 now) or "
        "more synthetic rows (generate.per_label) would settle it"
    )
    assert text.endswith(f"{numbers['settle']}. (one training seed, 40 test texts)")


def test_verdict_with_a_clear_gap_keeps_its_wording_and_appends_the_interval():
    f1 = {"real": 0.80, "zero_shot": 0.60, "few_shot": 0.70}
    numbers = verdict_numbers(
        f1,
        ["zero_shot", "few_shot"],
        gap_ci={"zero_shot": (0.12, 0.28), "few_shot": (0.041, 0.16)},
        real_macro_f1_low=0.7,
        chance_macro_f1=0.25,
    )
    assert numbers["inconclusive"] is False and numbers["settle"] is None
    text = verdict_sentence(numbers, f1)
    assert text.endswith(
        "Synthetic data (few-shot) is usable but costs 13% of Macro-F1 (real − few-shot gap +10.0 Macro-F1 "
        "points, 95% interval [+4.1, +16.0]); real labels still pay off."
    )
    poor = {"real": 0.80, "zero_shot": 0.40}
    low = verdict_numbers(poor, ["zero_shot"], gap_ci={"zero_shot": (0.3, 0.5)}, real_macro_f1_low=0.7)
    assert verdict_sentence(low, poor).endswith(
        "no substitute here (best: zero-shot at 50% of real; real − zero-shot gap +40.0 Macro-F1 points, "
        "95% interval [+30.0, +50.0]); label real data."
    )


def test_verdict_near_real_needs_an_interval_inside_the_margin():
    f1 = {"real": 0.80, "zero_shot": 0.79}
    # [-1, +3] points includes zero, but its worst end (3 pts) is within 5% of real (4 pts): equivalence.
    tight = verdict_numbers(f1, ["zero_shot"], gap_ci={"zero_shot": (-0.01, 0.03)})
    assert tight["inconclusive"] is False
    assert verdict_sentence(tight, f1).endswith(
        "nearly replaces real labels for this task (real − zero-shot gap +1.0 Macro-F1 points, 95% interval "
        "[-1.0, +3.0])."
    )
    wide = verdict_numbers(f1, ["zero_shot"], gap_ci={"zero_shot": (-0.05, 0.08)})
    assert wide["inconclusive_reason"] == "gap_includes_zero"
    assert "nearly replaces" not in verdict_sentence(wide, f1)
    # Intervals were asked for but none could be made for the best mode: no conclusion either.
    none = verdict_numbers(f1, ["zero_shot"], gap_ci={})
    assert none["inconclusive_reason"] == "no_interval"
    assert "Inconclusive: no 95% interval on the real − zero-shot gap could be computed" in verdict_sentence(
        none, f1
    )


def test_chance_macro_f1_and_hull():
    assert chance_macro_f1({"a": 8, "b": 8, "c": 8, "d": 8, "e": 8}) == pytest.approx(1 / 5)
    # Shares 3/4 and 1/4 of K = 2: F1 = 2p / (2p + 1) → (1.5 / 2.5 + 0.5 / 1.5) / 2.
    assert chance_macro_f1({"a": 3, "b": 1}) == pytest.approx((0.6 + 1 / 3) / 2)
    # The same by simulation: a uniform guesser's Macro-F1 on a large test set with that label mix.
    rng = np.random.default_rng(0)
    truth = np.where(rng.random(200_000) < 0.75, "a", "b")
    guess = np.where(rng.random(200_000) < 0.5, "a", "b")
    assert f1_score(truth, guess, average="macro") == pytest.approx((0.6 + 1 / 3) / 2, abs=0.005)
    assert chance_macro_f1({}) is None
    assert hull((0.1, 0.2), None, (-0.05, 0.15)) == (-0.05, 0.2) and hull(None) is None


def test_gap_interval_hulls_the_paired_bootstrap_and_the_seed_interval(tmp_path):
    truth = ["a", "b"] * 20
    real_pred = [*truth[:36], "b", "a", "b", "a"]  # 4 wrong
    mode_pred = truth[:30] + ["b", "a"] * 5  # 10 wrong
    rows = {
        name: [
            {"text": f"t{i}", "label": y, "prediction": p}
            for i, (y, p) in enumerate(zip(truth, pred, strict=True))
        ]
        for name, pred in (("real", real_pred), ("zero_shot", mode_pred))
    }
    one_seed = {
        "real": evaluation_metrics("t", "real", "b", [0.9]),
        "zero_shot": evaluation_metrics("t", "zero_shot", "b", [0.75]),
    }
    boot = paired_bootstrap(truth, real_pred, mode_pred, n_resamples=2000, seed=7)
    interval = gap_interval(one_seed["real"], rows["real"], one_seed["zero_shot"], rows["zero_shot"], 7)
    assert interval == (boot["ci_low"], boot["ci_high"])  # one seed: the bootstrap alone
    # Three seeds a side: the hull also holds Welch's interval of the seed means.
    real3 = evaluation_metrics("t", "real", "b", [0.80, 0.90, 1.00])
    mode3 = evaluation_metrics("t", "zero_shot", "b", [0.70, 0.75, 0.80])
    welch = stats.ttest_ind([0.80, 0.90, 1.00], [0.70, 0.75, 0.80], equal_var=False).confidence_interval(0.95)
    low, high = gap_interval(real3, rows["real"], mode3, rows["zero_shot"], 7)
    assert low == pytest.approx(min(boot["ci_low"], welch.low))
    assert high == pytest.approx(max(boot["ci_high"], welch.high))
    # Predictions on different test texts cannot be paired: only the seed interval is left (or nothing).
    shuffled = list(reversed(rows["zero_shot"]))
    assert gap_interval(real3, rows["real"], mode3, shuffled, 7) == pytest.approx((welch.low, welch.high))
    assert gap_interval(one_seed["real"], rows["real"], one_seed["zero_shot"], shuffled, 7) is None

    # verdict_evidence reads the same predictions from results/ and judges the real model against chance.
    layout = Layout(tmp_path)
    for name, condition_rows in rows.items():
        path = layout.predictions("t", name, "b")
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in condition_rows), encoding="utf-8")
    evidence = verdict_evidence("t", "b", ["zero_shot", "few_shot"], one_seed, layout, seed=7)
    assert evidence["gap_ci"] == {"zero_shot": (boot["ci_low"], boot["ci_high"])}
    assert evidence["chance_macro_f1"] == pytest.approx(0.5)  # two balanced labels (from the gold labels)
    assert 0.5 < evidence["real_macro_f1_low"] < 0.9 and evidence["n_test"] == 6 and evidence["n_seeds"] == 1


# ----------------------------------------------------------------------------------------------------
# Task level
# ----------------------------------------------------------------------------------------------------


def test_task_subjectivity_from_comparisons_with_registry_fallback():
    # humor beats everyone, imdb beats ag_news: a clear order ag_news < imdb < humor.
    comparisons = [("ag_news", "imdb", "imdb"), ("imdb", "humor", "humor"), ("ag_news", "humor", "humor")] * 3
    frame = task_subjectivity(
        ["humor", "ag_news", "sms_spam"], {"humor": 5, "ag_news": 1, "sms_spam": 2}, comparisons
    ).set_index("task")
    assert frame.loc["humor", "rank"] == 3 and frame.loc["ag_news", "rank"] == 1
    assert frame.loc["humor", "score"] > frame.loc["ag_news", "score"]
    assert (frame.loc["humor", "stars"], frame.loc["ag_news", "stars"]) == (4, 1)  # 3 tasks → bins 1, 2, 4
    assert frame.loc["sms_spam", "source"] == "registry" and frame.loc["sms_spam", "stars"] == 2
    assert subjectivity_measure(frame.reset_index()) == "stars"  # sms_spam has no score
    assert subjectivity_measure(frame.drop(index="sms_spam").reset_index()) == "score"


def test_gap_correlation_is_spearman_over_tasks():
    gaps = pd.DataFrame(
        {
            "task": list("abcd"),
            "backbone": "m",
            "condition": "zero_shot",
            "stars": [1, 2, 4, 5],
            "macro_f1_gap_pts": [-2.0, -5.0, -4.0, -30.0],
        }
    )
    [row] = gap_correlations(gaps, "stars")
    expected = stats.spearmanr([1, 2, 4, 5], [-2.0, -5.0, -4.0, -30.0])
    assert row["spearman_rho"] == pytest.approx(-0.8) == pytest.approx(expected.statistic)
    assert row["spearman_p"] == pytest.approx(expected.pvalue) and row["n_tasks"] == 4 and row["note"] == ""
    [flat] = gap_correlations(gaps.assign(stars=3), "stars")
    assert flat["spearman_rho"] is None and "same subjectivity" in flat["note"]


def test_describe_correlation_names_a_direction_only_with_evidence():
    row = {
        "condition": "zero_shot",
        "backbone": "m",
        "n_tasks": 10,
        "spearman_rho": -0.04,
        "spearman_p": 0.92,
    }
    text = describe_correlation(row, "stars")
    assert "widen" not in text and "narrow" not in text
    assert text == (
        "zero_shot (m): Spearman ρ = -0.04 (p = 0.92, 10 tasks) between star level and Macro-F1 gap to real; "
        "no evidence that the gap changes with subjectivity at 10 tasks (p ≥ 0.05); more tasks would settle it."
    )
    strong = describe_correlation({**row, "spearman_rho": -0.8, "spearman_p": 0.005}, "score")
    assert strong.endswith(
        "Bradley–Terry score and Macro-F1 gap to real; the gap widens with subjectivity, as the paper found."
    )
    opposite = describe_correlation({**row, "spearman_rho": 0.7, "spearman_p": 0.02}, "stars")
    assert opposite.endswith("the gap narrows with subjectivity, the opposite of the paper's finding.")
    assert "no evidence" in describe_correlation({**row, "spearman_rho": -0.6, "spearman_p": 0.05}, "stars")


# ----------------------------------------------------------------------------------------------------
# Instance level
# ----------------------------------------------------------------------------------------------------


def test_read_annotations_in_three_layouts(tmp_path):
    pre = tmp_path / "pre.csv"
    pd.DataFrame({"text": ["a  b", "c", "a b"], "agreement": [0.5, 1.0, 0.9]}).to_csv(pre, index=False)
    assert read_annotations(pre).to_dict() == {"a b": 0.5, "c": 1.0}  # normalised; first row of a duplicate
    long = tmp_path / "long.jsonl"
    long.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"text": "x", "annotator": 1, "label": "pos"},
                {"text": "x", "annotator": 2, "label": "pos"},
                {"text": "x", "annotator": 3, "label": "neg"},
                {"text": "y", "annotator": 1, "label": "neg"},
            ]
        )
    )
    assert read_annotations(long).to_dict() == pytest.approx({"x": 2 / 3, "y": 1.0})
    wide = tmp_path / "wide.csv"
    wide.write_text(
        "text,annotator_1,annotator_2,annotator_3,annotator_4\nx,pos,neg,neg,\ny,pos,pos,pos,pos\n"
    )
    assert read_annotations(wide).to_dict() == pytest.approx({"x": 2 / 3, "y": 1.0})
    bad = tmp_path / "bad.csv"
    bad.write_text("text,score\nx,1\n")
    with pytest.raises(DataError, match=r"bad\.csv: unknown annotations layout"):
        read_annotations(bad)
    with pytest.raises(DataError, match="not found"):
        read_annotations(tmp_path / "absent.csv")


@pytest.mark.skipif(not (PHRASEBANK / "annotations.csv").exists(), reason="shared data not present")
def test_agreement_curve_on_the_shared_financial_phrasebank_annotations():
    agreement = read_annotations(PHRASEBANK / "annotations.csv")
    test = pd.read_csv(PHRASEBANK / "test.csv").drop_duplicates("text")  # prepare drops duplicate texts
    # A model right exactly on the texts with agreement ≥ 0.75: accuracy(γ) = n(a ≥ max(γ, 0.75)) / n(a ≥ γ).
    a = test["text"].map(normalise_text).map(agreement)  # 6 texts differ from the file in whitespace only
    assert a.notna().all()
    rows = [
        {"text": t, "label": lab, "prediction": lab if ai >= 0.75 else "wrong"}
        for t, lab, ai in zip(test["text"], test["label"], a, strict=True)
    ]
    curve, trends = agreement_curves({"real": rows}, agreement)
    assert curve["threshold"].tolist() == [0.5, 0.66, 0.75, 1.0]
    assert curve["coverage"].iloc[0] == 1.0
    expected_n = [int((a >= g).sum()) for g in (0.5, 0.66, 0.75, 1.0)]
    assert curve["n"].tolist() == expected_n and expected_n[0] == len(test) and expected_n[3] >= 470
    assert curve["accuracy"].tolist() == pytest.approx([min(expected_n[2], n) / n for n in expected_n])
    [trend] = trends.to_dict("records")
    assert trend["n"] == 4 and trend["slope"] > 0 and 0 < trend["r2"] <= 1 and trend["note"] == ""


def test_agreement_curves_report_no_match_instead_of_failing():
    curve, trends = agreement_curves(
        {"real": [{"text": "q", "label": "a", "prediction": "a"}]}, pd.Series({"other": 1.0})
    )
    assert curve.empty and trends["note"].tolist() == ["no test text matched the annotations file"]


# ----------------------------------------------------------------------------------------------------
# Diversity wiring
# ----------------------------------------------------------------------------------------------------


def test_diversity_table_size_matches_and_takes_ratios_to_real():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((12, 8))
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    synthetic = np.repeat(real[:2], 3, axis=0)  # 6 rows, two distinct points
    table = diversity_table({"real": real, "zero_shot": synthetic}, seed=0).set_index("set")
    assert table["n_used"].tolist() == [6, 6] and table["n_total"].tolist() == [12, 6]
    assert table.loc["zero_shot", "chamfer"] == pytest.approx(0.0, abs=1e-6)  # every row has a duplicate
    assert table.loc["zero_shot", "remote_clique"] == pytest.approx(remote_clique(synthetic))
    sample = real[np.sort(np.random.default_rng(0).choice(12, size=6, replace=False))]
    assert table.loc["real", "chamfer"] == pytest.approx(chamfer(sample))
    assert table.loc["zero_shot", "remote_clique_vs_real"] == pytest.approx(
        remote_clique(synthetic) / remote_clique(sample)
    )
    assert np.isnan(table.loc["real", "closeness"]) and -1 <= table.loc["zero_shot", "closeness"] <= 1


def test_cached_embeddings_with_bundled_minilm(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "texts.jsonl"
    texts = [
        f"Sentence number {k} about {topic}."
        for k, topic in enumerate(
            [
                "football",
                "stocks",
                "elections",
                "films",
                "phones",
                "weather",
                "cooking",
                "travel",
                "music",
                "art",
            ]
        )
    ]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    first, hit = cached_embeddings(path, tmp_path)
    assert not hit and first.shape == (10, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    again, hit = cached_embeddings(path, tmp_path)
    assert hit and np.array_equal(first, again)
    old = embedding_fingerprint(path, None)
    assert embedding_fingerprint(path, "some/other-model") != old
    path.write_text(path.read_text() + json.dumps({"text": "One more."}) + "\n")
    assert embedding_fingerprint(path, None) != old
    grown, hit = cached_embeddings(path, tmp_path)
    assert not hit and grown.shape == (11, 384)


# ----------------------------------------------------------------------------------------------------
# Training histories, report rendering, settings
# ----------------------------------------------------------------------------------------------------


def test_history_rows_read_one_run_or_several_seeds_and_wide_table_keeps_empty_columns():
    one = history_rows(
        training_manifest("t", "c", "b", [[{"epoch": 1, "train_loss": 0.9, "val_macro_f1": 0.5}]])
    )
    assert one == [
        {
            "seed": 0,
            "epoch": 1.0,
            "train_loss": 0.9,
            "val_loss": None,
            "val_macro_f1": 0.5,
            "val_accuracy": None,
        }
    ]
    seeded = history_rows(training_manifest("t", "c", "b", [[{"epoch": 1}], [{"epoch": 1}]]))
    assert [row["seed"] for row in seeded] == [0, 1]
    frame = pd.DataFrame({"epoch": [2.0, 1.0], "condition": ["real", "real"], "v": [0.2, 0.1]})
    wide = wide_table(frame, "epoch", "v", "condition", ["real", "few_shot"])
    assert list(wide.columns) == ["epoch", "real", "few_shot"] and wide["real"].tolist() == [0.1, 0.2]
    assert wide["few_shot"].isna().all()


def test_report_renders_escaped_markdown_and_html(tmp_path):
    png = tmp_path / "figures" / "a.png"
    png.parent.mkdir()
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    blocks = [
        Heading("Title <1>", 1),
        Paragraph("a & b"),
        Table(["k", "v"], [["x|y", "1.0"]]),
        Figure(png, "cap"),
    ]
    md = to_markdown(blocks, base=tmp_path)
    assert md == (
        "# Title <1>\n\na & b\n\n| k | v |\n|---|---:|\n| x\\|y | 1.0 |\n\n![cap](figures/a.png)\n\n*cap*\n"
    )
    html = to_html(blocks, "t")
    assert "<h1>Title &lt;1&gt;</h1>" in html and "<p>a &amp; b</p>" in html
    assert '<td class="num">1.0</td>' in html and 'src="data:image/png;base64,iVBORw0KGgpmYWtl"' in html


def test_analysis_settings_from_params_section():
    assert analysis_settings(SimpleNamespace()) == AnalysisSettings()
    settings = analysis_settings(
        SimpleNamespace(analysis={"annotations": {"t": "a.csv"}, "diversity": False})
    )
    assert settings.annotations == {"t": "a.csv"} and settings.diversity is False
    assert settings.resolve("a.csv", Path("/r")) == Path("/r/a.csv")
    assert settings.resolve("/abs/a.csv", Path("/r")) == Path("/abs/a.csv")

    with pytest.raises(ConfigError, match=r"'analysis\.annotation'"):
        analysis_settings(SimpleNamespace(analysis={"annotation": {}}))
