"""train → evaluate → champion into a real MLflow SQLite store, on tiny data with the real MiniLM:
parent run + nested seed runs, dataset inputs with their DVC md5, seed statistics in metrics.json, a registered
model with signature and input example that a NEW process reloads by alias and that reproduces the logged
test accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.test_training_data import FRESH, ROTTEN, TASK, tiny_params, write_tiny_task

from factories import champion_stage, evaluate_stage, train_stage
from synthbench.data.io import file_md5
from synthbench.errors import ConfigError
from synthbench.evaluation.compare import compare_conditions
from synthbench.layout import Layout
from synthbench.records import GenerationSummary
from synthbench.stats import seed_summary

pytestmark = pytest.mark.slow
BACKBONE = "minilm-l6"
SYNTHETIC = [(f"{t}, truly", "fresh") for t in FRESH[:4]] + [(f"{t}, sadly", "rotten") for t in ROTTEN[:4]]


BATCH_SUMMARY = GenerationSummary(
    task=TASK,
    mode="zero_shot",
    endpoint="https://api.openai.com/v1",
    model="gpt-4o-mini@https://api.openai.com/v1",
    prompt_id="p",
    sampling={},
    seed=0,
    per_label_target=4,
    accepted_per_label={"fresh": 4, "rotten": 4},
    attempts_per_label={"fresh": 4, "rotten": 4},
    short_labels=[],
    rejected={},
    rejected_per_label={},
    n_rows=8,
    client={"cost_usd": 0.0042, "prompt_tokens": 1200, "completion_tokens": 300, "calls_made": 8},
    wall_seconds=1.0,
    endpoint_mode="batch",
    price_factor=0.5,
)


@pytest.fixture(scope="module")
def study(module_tmp: Path) -> dict:
    root = module_tmp
    # the synthetic file leaks one test text: training must drop it
    write_tiny_task(root, {"zero_shot": [*SYNTHETIC, (FRESH[8], "fresh")]})
    BATCH_SUMMARY.write(Layout(root).synthetic_summary(TASK, "zero_shot"))  # generated through the Batch API
    two_seeds = tiny_params(root, seeds=[0, 1])
    one_seed = tiny_params(root, seeds=[0])
    manifests = {
        "real": train_stage(TASK, "real", BACKBONE, two_seeds, root).model_dump(mode="json"),
        "zero_shot": train_stage(TASK, "zero_shot", BACKBONE, one_seed, root).model_dump(mode="json"),
    }
    metrics = {
        c: evaluate_stage(TASK, c, BACKBONE, two_seeds, root).model_dump(mode="json") for c in manifests
    }
    params = two_seeds.model_copy(update={"conditions": ["real", "zero_shot"], "modes": ["zero_shot"]})
    champions = champion_stage(params, root)
    import mlflow

    return {
        "root": root,
        "manifests": manifests,
        "metrics": metrics,
        "champions": champions,
        "uri": params.tracking_uri,
        "client": mlflow.MlflowClient(tracking_uri=params.tracking_uri),
    }


def test_parent_run_has_a_nested_run_per_seed(study: dict) -> None:
    client, manifest = study["client"], study["manifests"]["real"]
    parent = client.get_run(manifest["mlflow_run_id"])
    assert parent.data.tags["synthbench.condition"] == "real"
    assert parent.data.params["train.seed_list"] == "0,1"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(run.data.tags["synthbench.seed"] for run in children) == ["0", "1"]
    assert {run.info.run_id for run in children} == {r["mlflow_run_id"] for r in manifest["seeds"]}
    assert [len(r["history"]) for r in manifest["seeds"]] == [1, 1]
    for child in children:
        assert "val_macro_f1" in child.data.metrics and "test_accuracy" in child.data.metrics
        assert child.data.metrics["best_epoch"] == 1.0
    assert parent.data.metrics["test_macro_f1"] == pytest.approx(study["metrics"]["real"]["macro_f1"])


def test_training_data_is_logged_as_dataset_inputs_with_the_dvc_md5(study: dict) -> None:
    root, client = study["root"], study["client"]
    for condition, path in (
        ("real", "data/real/rotten_tomatoes/train.jsonl"),
        ("zero_shot", "data/synthetic/rotten_tomatoes/zero_shot.jsonl"),
    ):
        manifest = study["manifests"][condition]
        for run_id in (manifest["mlflow_run_id"], manifest["registered_run_id"]):
            inputs = client.get_run(run_id).inputs.dataset_inputs
            assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [
                (f"{TASK}/{condition}", file_md5(root / path))
            ]
            assert json.loads(inputs[0].dataset.source)["uri"].endswith(path)
            assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
        assert manifest["dataset_md5"] == file_md5(root / path)


def test_a_synthetic_run_records_what_its_data_cost_at_the_price_paid(study: dict) -> None:
    client = study["client"]
    run = client.get_run(study["manifests"]["zero_shot"]["mlflow_run_id"])
    assert run.data.params["generation.zero_shot.endpoint_mode"] == "batch"
    assert run.data.params["generation.zero_shot.price_factor"] == "0.5"
    assert run.data.metrics["generation.zero_shot.cost_usd"] == pytest.approx(0.0042)
    assert run.data.metrics["generation.zero_shot.calls_made"] == 8.0
    real = client.get_run(study["manifests"]["real"]["mlflow_run_id"])
    assert not [key for key in [*real.data.params, *real.data.metrics] if key.startswith("generation.")]


def test_leaked_test_text_is_dropped_before_the_split(study: dict) -> None:
    data = study["manifests"]["zero_shot"]["data"]
    assert data["removed"] == {"test_overlap": 1, "duplicates": 0}
    assert data["n_rows"] == len(SYNTHETIC)


def test_metrics_report_the_mean_std_and_t_interval_over_seeds(study: dict) -> None:
    metrics = study["metrics"]["real"]
    assert [s["seed"] for s in metrics["seeds"]] == [0, 1] and metrics["n_test"] == 6
    for name in ("macro_f1", "accuracy"):
        per_seed = [s[name] for s in metrics["seeds"]]
        expected = seed_summary(per_seed, bounds=(0.0, 1.0))
        assert metrics[name] == metrics[f"{name}_mean"] == pytest.approx(sum(per_seed) / 2)
        assert metrics[f"{name}_std"] == pytest.approx(expected["std"])
        assert metrics[f"{name}_ci95"] == {
            "low": pytest.approx(expected["ci_low"]),
            "high": pytest.approx(expected["ci_high"]),
        }
    single = study["metrics"]["zero_shot"]
    assert single["n_seeds"] == 1 and single["macro_f1_std"] is None and single["macro_f1_ci95"] is None
    out = study["root"] / "results" / TASK / "real" / BACKBONE
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["macro_f1"] == metrics["macro_f1"] and set(on_disk["per_class"]) == {"fresh", "rotten"}
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(set(r["prediction_by_seed"]) == {"0", "1"} for r in rows)
    assert all(abs(sum(r["proba"].values()) - 1) < 1e-4 for r in rows)


def test_registered_model_has_signature_input_example_and_tags(study: dict) -> None:
    import mlflow

    manifest = study["manifests"]["real"]
    name, version = manifest["registered_model"], manifest["registered_version"]
    model_version = study["client"].get_model_version(name, version)
    assert model_version.run_id == manifest["registered_run_id"]
    assert model_version.tags["synthbench.seed"] == str(manifest["selected_seed"])
    assert model_version.tags["synthbench.dataset_md5"] == manifest["dataset_md5"]
    mlflow.set_tracking_uri(study["uri"])
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    assert info.signature.inputs.input_types() == [mlflow.types.DataType.string]
    assert info.saved_input_example_info["artifact_path"] == "input_example.json"


def test_champion_is_the_best_condition_and_reloads_in_a_new_process(study: dict) -> None:
    champion = study["champions"][TASK]
    metrics = study["metrics"]
    best = max(("real", "zero_shot"), key=lambda c: (metrics[c]["macro_f1"], metrics[c]["accuracy"]))
    assert champion["condition"] == best and champion["uri"] == f"models:/synthbench-{TASK}@champion"
    manifest = study["manifests"][best]
    logged = study["client"].get_run(manifest["registered_run_id"]).data.metrics["test_accuracy"]
    test = [
        json.loads(line)
        for line in (study["root"] / "data/real" / TASK / "test.jsonl").read_text().splitlines()
    ]
    script = (
        "import json, sys, mlflow\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "model = mlflow.pyfunc.load_model(sys.argv[2])\n"
        "print(json.dumps(list(model.predict(json.loads(sys.argv[3])))))\n"
    )
    for uri in (champion["uri"], f"models:/{champion['registered_model']}@champion"):
        done = subprocess.run(
            [sys.executable, "-c", script, study["uri"], uri, json.dumps([r["text"] for r in test])],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        predicted = json.loads(done.stdout.strip().splitlines()[-1])
        accuracy = sum(p == r["label"] for p, r in zip(predicted, test, strict=True)) / len(test)
        assert accuracy == pytest.approx(logged)


def test_set_champions_again_copies_nothing_new(study: dict) -> None:
    params = tiny_params(study["root"]).model_copy(
        update={"conditions": ["real", "zero_shot"], "modes": ["zero_shot"]}
    )
    again = champion_stage(params, study["root"])
    assert again == study["champions"]
    versions = study["client"].search_model_versions(f"name='synthbench-{TASK}'")
    assert len(versions) == 1


def test_paired_bootstrap_between_two_evaluated_conditions(study: dict) -> None:
    result = compare_conditions(TASK, "real", "zero_shot", BACKBONE, Layout(study["root"]), n_resamples=200)
    real, synthetic = (
        [
            json.loads(line)
            for line in (study["root"] / "results" / TASK / c / BACKBONE / "predictions.jsonl")
            .read_text()
            .splitlines()
        ]
        for c in ("real", "zero_shot")
    )
    macro_selected = (
        study["metrics"]["real"]["selected"]["macro_f1"]
        - study["metrics"]["zero_shot"]["selected"]["macro_f1"]
    )
    assert result["diff"] == pytest.approx(macro_selected)
    assert result["ci_low"] <= result["diff"] <= result["ci_high"] and 0 < result["p_value"] <= 1
    assert len(real) == len(synthetic) == result["n"] == 6


def test_evaluate_and_champion_in_another_tracking_store_fail_with_the_fix(study: dict, tmp_path) -> None:
    elsewhere = tiny_params(tmp_path).model_copy(
        update={"conditions": ["real", "zero_shot"], "modes": ["zero_shot"]}
    )
    before = (study["root"] / "results" / TASK / "real" / BACKBONE / "metrics.json").read_bytes()
    with pytest.raises(ConfigError) as caught:
        evaluate_stage(TASK, "real", BACKBONE, elsewhere, study["root"])
    message = str(caught.value)
    assert study["manifests"]["real"]["mlflow_run_id"] in message and str(tmp_path) in message
    assert "MLFLOW_TRACKING_URI" in message and "\n" not in message
    assert (study["root"] / "results" / TASK / "real" / BACKBONE / "metrics.json").read_bytes() == before
    with pytest.raises(
        ConfigError, match=r"registered model synthbench-rotten_tomatoes-.* is not in the tracking"
    ):
        champion_stage(elsewhere, study["root"])


def test_evaluate_reads_the_train_stages_test_scores_and_they_equal_the_models_own(study: dict) -> None:
    root = study["root"]
    layout = Layout(root)
    results = layout.results(TASK, "real", BACKBONE)
    with np.load(layout.test_scores(TASK, "real", BACKBONE)) as saved:
        assert sorted(saved.files) == ["fingerprint", "labels", "seed_0", "seed_1"]
        assert saved["labels"].tolist() == ["fresh", "rotten"] and saved["seed_1"].shape == (6, 2)
    # A new process evaluates from the saved scores without loading torch or transformers (its start-up is
    # most of an evaluate stage's time) and writes what the first evaluation wrote.
    uri = tiny_params(root).tracking.uri
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from synthbench.config import TrackingParams\n"
        "from synthbench.evaluation.stage import run_evaluate\n"
        "from synthbench.layout import Layout\n"
        "tracking = TrackingParams(uri=sys.argv[2], experiment='synthbench-tests')\n"
        f"run_evaluate({TASK!r}, 'real', {BACKBONE!r}, tracking_params=tracking, layout=Layout(Path(sys.argv[1])))\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    before = (results / "predictions.jsonl").read_text()
    done = subprocess.run(
        [sys.executable, "-c", script, str(root), uri],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (results / "predictions.jsonl").read_text() == before
    # Without the scores (or for other texts) evaluate scores the models itself: the same metrics.
    scores = layout.test_scores(TASK, "real", BACKBONE)
    saved_bytes = scores.read_bytes()
    scores.unlink()
    try:
        again = evaluate_stage(TASK, "real", BACKBONE, tiny_params(root), root).model_dump(mode="json")
    finally:
        scores.write_bytes(saved_bytes)
    assert [s["macro_f1"] for s in again["seeds"]] == [
        s["macro_f1"] for s in study["metrics"]["real"]["seeds"]
    ]
    rows = [json.loads(line) for line in (results / "predictions.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in before.splitlines()]
    assert [r["prediction_by_seed"] for r in rows] == [r["prediction_by_seed"] for r in expected]
    for row, old in zip(rows, expected, strict=True):
        assert row["proba"] == pytest.approx(old["proba"], abs=1e-5)
