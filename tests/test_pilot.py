"""The pilot: each signal against hand-computed values on constructed embeddings, the prediction and verdict
rules, and the real stage against the OpenAI-compatible test server (its requests are a prefix of the full run's;
it never reads the test split)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from tests.test_strategy_contract import GENERATE, SPEC, build, project

from factories import server_generate
from synthbench.config import PilotParams, TrackingParams
from synthbench.generation.client import ChatRequest
from synthbench.generation.filters import QualityFilter
from synthbench.generation.journal import Completion
from synthbench.generation.requests import OnResult
from synthbench.generation.rounds import Plan, collect
from synthbench.generation.stage import run_generate
from synthbench.pilot import signals
from synthbench.pilot.stage import run_pilot
from synthbench.pilot.verdict import Prediction, curve_at, predict, predicted_gap, verdict
from synthbench.stats import bootstrap_scores, metric_value
from synthbench.testing.openai_server import serve


def clusters(
    n_per_label: int, labels: list[str], seed: int, shift: float = 0.0
) -> tuple[np.ndarray, list[str]]:
    """Unit vectors around one centre per label (8 dims), optionally all moved along the last axis."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[: len(labels)] * 3
    emb = np.vstack([centres[i] + rng.normal(scale=0.5, size=(n_per_label, 8)) for i in range(len(labels))])
    emb[:, -1] += shift
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), [
        label for label in labels for _ in range(n_per_label)
    ]


LABELS = ["a", "b", "c"]


def test_fidelity_is_high_for_true_labels_and_chance_for_shuffled_ones() -> None:
    real, real_labels = clusters(60, LABELS, seed=0)
    oracle = signals.cheap_classifier(real, real_labels)
    synth, synth_labels = clusters(40, LABELS, seed=1)
    assert signals.label_fidelity(oracle, synth, synth_labels).overall > 0.9
    shuffled = list(np.random.default_rng(2).permutation(synth_labels))
    fidelity = signals.label_fidelity(oracle, synth, shuffled)
    assert abs(fidelity.overall - 1 / 3) < 0.12
    assert fidelity.confusions and all(share >= 0.10 for _, _, share in fidelity.confusions)


def test_fidelity_names_the_confusion_that_matters() -> None:
    real, real_labels = clusters(60, LABELS, seed=0)
    oracle = signals.cheap_classifier(real, real_labels)
    synth, synth_labels = clusters(10, LABELS, seed=1)
    # the 10 'c' rows are really 'a' rows: 100% of 'c' reads as 'a'
    synth[20:] = synth[:10]
    fidelity = signals.label_fidelity(oracle, synth, synth_labels)
    assert fidelity.per_label["c"] == 0.0 and fidelity.per_label["a"] == 1.0
    assert fidelity.confusions[0] == ("c", "a", 1.0)
    assert math.isclose(fidelity.overall, 2 / 3)


def test_distinguishability_is_half_for_copies_and_one_for_a_shifted_set() -> None:
    real, _ = clusters(40, LABELS, seed=0)
    copies = real[np.random.default_rng(3).permutation(len(real))]
    assert abs(signals.distinguishability(real, copies) - 0.5) < 0.15
    shifted, _ = clusters(40, LABELS, seed=1, shift=6.0)
    assert signals.distinguishability(real, shifted) > 0.95
    assert signals.distinguishability(real[:3], shifted, folds=5) is None


def test_nested_subsamples_are_stratified_and_nested() -> None:
    labels = ["x"] * 10 + ["y"] * 6
    subsets = signals.nested_subsamples(labels, [2, 4, 8])
    assert [len(subsets[s]) for s in (2, 4, 8)] == [4, 8, 14]  # 'y' has only 6
    assert set(subsets[2]) <= set(subsets[4]) <= set(subsets[8])
    assert signals.curve_sizes(12, 5) == [2, 4, 5, 8, 12]


def test_predicted_gap_by_hand() -> None:
    sizes, curve = [2, 4, 8], [0.5, 0.7, 0.9]
    assert curve_at(sizes, curve, 1) == 0.5 and curve_at(sizes, curve, 100) == 0.9
    assert math.isclose(curve_at(sizes, curve, math.sqrt(32)), 0.8)  # halfway in log(rows) from 4 to 8
    gap, worth, synthetic = predicted_gap(sizes, curve, 0.7, pilot_rows=4, full_rows=8)
    assert (round(gap, 9), worth, synthetic) == (0.0, 4.0, 0.9)  # worth its size: the full run matches real
    gap, worth, synthetic = predicted_gap(sizes, curve, 0.6, pilot_rows=4, full_rows=8)
    assert math.isclose(worth, 2 * math.sqrt(2)) and math.isclose(synthetic, 0.8) and math.isclose(gap, 0.1)
    gap, _, synthetic = predicted_gap(sizes, curve, 0.4, pilot_rows=4, full_rows=8)
    assert synthetic == 0.4 and math.isclose(gap, 0.5)  # below the curve: no growth credited


def prediction(gap: float, low: float, high: float, real_low: float = 0.8) -> Prediction:
    return Prediction(gap, low, high, 0.9, real_low, 0.5, 0.8, 10.0, 0.9 - gap)


def test_verdict_rules() -> None:
    thresholds = {"go_gap": 0.05, "no_go_gap": 0.15}
    assert verdict(prediction(0.01, -0.02, 0.04), **thresholds)[0] == "go"
    assert verdict(prediction(0.30, 0.20, 0.40), **thresholds)[0] == "no-go"
    decision, reason = verdict(prediction(0.04, -0.01, 0.12), **thresholds)
    assert decision == "borderline" and "pilot.rows_per_label" in reason
    decision, reason = verdict(prediction(0.01, -0.02, 0.04, real_low=0.45), **thresholds)
    assert decision == "inconclusive" and "not clearly above chance" in reason


def test_bootstrap_scores_are_paired_and_centred_on_the_full_score() -> None:
    truth = ["a", "b", "c"] * 20
    good, bad = list(truth), ["a"] * 60
    good[:6] = ["b"] * 6
    draws = bootstrap_scores(truth, {"good": good, "same": good, "bad": bad}, n_resamples=500)
    assert np.array_equal(draws["good"], draws["same"]) and draws["good"].shape == (500,)
    assert abs(draws["good"].mean() - metric_value(truth, good)) < 0.02
    assert np.all(draws["good"] > draws["bad"])


def test_predict_goes_for_a_pilot_as_good_as_real_and_not_for_a_shuffled_one() -> None:
    real, real_labels = clusters(40, LABELS, seed=0)
    val, val_labels = clusters(30, LABELS, seed=5)
    sizes = [2, 5, 10, 40]
    subsets = signals.nested_subsamples(real_labels, sizes)
    labels = np.asarray(real_labels)
    curve = {
        f"real@{s}": signals.cheap_classifier(real[i], labels[i]).predict(val).tolist()
        for s, i in subsets.items()
    }
    copies = curve["real@10"]  # a pilot of 10 rows per label that copies real rows
    common = {"sizes": sizes, "pilot_rows": 10, "full_rows": 40, "n_labels": 3, "n_resamples": 300}
    good = predict(val_labels, {**curve, "pilot": copies}, **common)
    assert verdict(good, go_gap=0.05, no_go_gap=0.15)[0] == "go"
    shuffled = signals.cheap_classifier(
        real[subsets[10]], np.random.default_rng(1).permutation(labels[subsets[10]])
    )
    bad = predict(val_labels, {**curve, "pilot": shuffled.predict(val).tolist()}, **common)
    assert bad.gap > 0.3 and verdict(bad, go_gap=0.05, no_go_gap=0.15)[0] == "no-go"


class RecordingAnswerer:
    """Answers each request with a distinct text, except a too-short one (rejected) at the ``bad`` (label, index)
    slots; keeps every key it was asked."""

    def __init__(self, bad: set[tuple[str, int]]) -> None:
        self.bad = bad
        self.asked: list[str] = []

    def run(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> dict[str, Completion]:
        out = {}
        for request in requests:
            label, index = request.meta["label"], request.meta["index"]
            text = "no" if (label, index) in self.bad else f"{label} gadget review number {index} here"
            self.asked.append(request.key)
            out[request.key] = Completion(text, 10, 10, "stop", "m", 0.0)
        return out


def test_the_pilot_asks_only_the_rows_a_label_lacks_and_each_is_a_request_of_the_full_run(
    tmp_path: Path,
) -> None:
    project(tmp_path)
    generate = GENERATE.model_copy(update={"per_label": 20, "diversity_every": 10})
    bad = {("upbeat", 3), ("upbeat", 10)}

    def run(want: int | None) -> tuple[list[str], dict[str, list[int]]]:
        plan = Plan.build("gadgets", "zero_shot", SPEC, build("zero_shot", tmp_path), "m", generate)
        quality = QualityFilter(
            min_words=3, max_words=90, label_names=SPEC.label_names, near_duplicate_threshold=None
        )
        answerer = RecordingAnswerer(bad)
        enough = None if want is None else (lambda out: all(len(r) >= want for r in out.accepted.values()))
        outcome = collect(plan, answerer, quality, until=enough, want_per_label=want)
        return answerer.asked, {
            label: [row["sample_index"] for row in rows] for label, rows in outcome.accepted.items()
        }

    pilot_keys, pilot_rows = run(10)
    full_keys, full_rows = run(None)
    # round 1 (0-9 per label) leaves upbeat one short; round 2's first slot (10) is rejected, its second taken:
    # 22 requests, where asking whole rounds would have cost 30
    assert len(pilot_keys) == 22
    assert pilot_rows == {"upbeat": [0, 1, 2, 4, 5, 6, 7, 8, 9, 11], "grim": list(range(10))}
    assert set(pilot_keys) <= set(full_keys)  # a full run after it re-asks none of them
    assert {label: rows[:10] for label, rows in full_rows.items()} == pilot_rows
    assert len(full_keys) == len(set(full_keys)) == 42


# --- the stage ----------------------------------------------------------------------------------------------------
def test_the_pilot_stage_is_a_prefix_of_the_full_run_and_never_reads_the_test_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    layout = project(tmp_path)
    layout.real("gadgets", "test").write_text("not json: the pilot must not read this\n")
    tracking = TrackingParams(uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="pilots")
    with serve() as server:
        generate = server_generate(
            server.base_url,
            tmp_path / "journal.sqlite",
            per_label=6,
            diversity_every=2,
            price_in_per_mtok=1.0,
            price_out_per_mtok=2.0,
        )
        pilot = PilotParams(rows_per_label=4, cv_folds=2, bootstrap=200)
        report = run_pilot(
            "gadgets",
            seed=0,
            modes=["zero_shot"],
            generate=generate,
            pilot=pilot,
            spec=SPEC,
            tracking=tracking,
            layout=layout,
        )
        pilot_calls = server.stats()["chat_requests"]
        full = run_generate("gadgets", "zero_shot", seed=0, generate=generate, spec=SPEC, layout=layout)
        # the same full run on an empty journal: what it costs without a pilot
        fresh = generate.model_copy(update={"journal": str(tmp_path / "fresh.sqlite")})
        alone = run_generate("gadgets", "zero_shot", seed=0, generate=fresh, spec=SPEC, layout=layout)
    entry = report["modes"]["zero_shot"]
    assert entry["cost"]["pilot_requests"] == pilot_calls >= 8
    assert full.client["cached"] == pilot_calls  # every pilot answer reused
    assert full.client["calls_made"] + pilot_calls == alone.client["calls_made"]  # and nothing asked twice
    assert entry["verdict"] in {"go", "borderline", "no-go", "inconclusive"}
    assert entry["rows"] == 8 and entry["cost"]["full_requests"] >= 12
    assert entry["cost"]["full_usd_batch"] == pytest.approx(entry["cost"]["full_usd_online"] / 2, abs=1e-4)
    saved = json.loads(layout.pilot("gadgets", "json").read_text())
    assert saved["modes"]["zero_shot"]["verdict"] == entry["verdict"]
    assert "Pilot: gadgets" in layout.pilot("gadgets", "md").read_text()
    assert entry["verdict"].upper() in layout.pilot("gadgets", "html").read_text()
    # the same figures and files in MLflow
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking.uri)
    run = client.get_run(report["mlflow_run_id"])
    assert run.info.run_name == "pilot-gadgets"
    assert run.data.tags["synthbench.stage"] == "pilot" and run.data.tags["synthbench.task"] == "gadgets"
    assert run.data.tags["synthbench.pilot.zero_shot"] == entry["verdict"]
    metrics = run.data.metrics
    assert metrics["zero_shot.predicted_gap"] == pytest.approx(entry["prediction"]["gap"])
    assert metrics["zero_shot.predicted_gap_high"] == pytest.approx(entry["prediction"]["gap_high"])
    assert metrics["zero_shot.label_fidelity"] == pytest.approx(entry["fidelity"]["overall"])
    assert metrics["zero_shot.full_usd_online"] == pytest.approx(entry["cost"]["full_usd_online"])
    assert run.data.params["pilot_rows_per_label"] == "4" and run.data.params["modes"] == "zero_shot"
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "pilot")}
    assert logged == {"pilot/gadgets.json", "pilot/gadgets.md", "pilot/gadgets.html"}


def test_the_main_report_sets_each_pilot_next_to_the_measured_gap(tmp_path: Path) -> None:
    import pandas as pd

    from synthbench.analysis.pilot_section import pilot_rows, pilot_section
    from synthbench.data.io import write_json
    from synthbench.layout import Layout

    layout = Layout(tmp_path)
    entry = {"verdict": "go", "prediction": {"gap": 0.02, "gap_low": -0.01, "gap_high": 0.04}}
    write_json(layout.pilot("t", "json"), {"task": "t", "modes": {"zero_shot": entry, "few_shot": entry}})
    table = pd.DataFrame(
        {"task": "t", "backbone": "b", "condition": ["real", "zero_shot"], "macro_f1": [0.80, 0.77]}
    )
    rows = pilot_rows(["t", "no_pilot"], table, layout)
    assert [(r["mode"], r["verdict"]) for r in rows] == [("zero_shot", "go"), ("few_shot", "go")]
    assert rows[0]["actual_gap_pts"] == pytest.approx(3.0) and rows[1]["actual_gap_pts"] is None
    blocks = pilot_section(rows)
    assert "inside the pilot's interval for 1 of 1" in blocks[1].text  # +3.0 lies in [-1.0, +4.0]
    assert blocks[2].rows[1][-1] == "not trained"
    assert pilot_section([]) == []
