"""Evaluate stage: the trained models (one per seed) + the real test set → ``results/<task>/<condition>/<backbone>/``:

``metrics.json`` (DVC metrics)
    ``macro_f1`` / ``accuracy`` / ``ece``: the mean over the training seeds (what the summary compares), also
    as ``macro_f1_mean`` …, with ``macro_f1_std`` (ddof=1) and ``macro_f1_ci95`` {low, high} (Student-t
    interval of the mean, clipped to [0, 1]; both null with a single seed), the same for accuracy and ECE;
    ``seeds``: one {seed, macro_f1, accuracy, ece} per training seed; ``selected``: the metrics of the
    deployed (registered) model, the seed with the best validation Macro-F1; ``per_class``: its precision /
    recall / F1 / support per label.
``predictions.jsonl``
    per test text: gold label, the deployed model's prediction and class probabilities (and every seed's
    prediction when there are several seeds).
``confusion.json`` / ``confusion.png``
    the deployed model's confusion matrix (rows = true, columns = predicted, task label order).

Test metrics are also logged to MLflow: each seed's to its nested run, the mean/std/interval and the
confusion matrix to the parent run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthbench import tracking
from synthbench.classifier import TextClassifier
from synthbench.config import Params
from synthbench.data.io import read_json, read_jsonl, write_json, write_jsonl
from synthbench.errors import DataError
from synthbench.evaluation.metrics import classification_metrics, expected_calibration_error
from synthbench.evaluation.plots import plot_confusion
from synthbench.evaluation.stats import seed_summary


def results_dir(task: str, condition: str, backbone: str, root: Path = Path(".")) -> Path:
    return root / "results" / task / condition / backbone


def _seed_runs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-seed entries of a training manifest (a pre-seeds manifest: one model in the directory itself)."""
    runs = [run for run in manifest.get("seeds") or [] if isinstance(run, dict)]
    if runs:
        return runs
    return [{"seed": manifest.get("seed", 0), "model_dir": ".", "mlflow_run_id": manifest.get("mlflow_run_id")}]


def _ci(summary: dict[str, Any]) -> dict[str, float] | None:
    return None if summary["ci_low"] is None else {"low": summary["ci_low"], "high": summary["ci_high"]}


def run_evaluate(task: str, condition: str, backbone: str, params: Params, root: Path = Path(".")) -> dict[str, Any]:
    import mlflow

    model_path = root / "models" / task / condition / backbone
    manifest = read_json(model_path / "training.json")
    test_path = root / "data" / "real" / task / "test.jsonl"
    test = read_jsonl(test_path)
    if not test:
        raise DataError(f"{test_path}: empty test set; re-run prepare with a larger prepare.test_per_label")
    model_labels = list(manifest.get("labels") or [])
    unknown = sorted({str(row["label"]) for row in test} - set(model_labels))
    if model_labels and unknown:
        raise DataError(
            f"{test_path}: test labels {unknown} are not among the model's labels {model_labels}; re-run prepare "
            f"and train for this task (dvc repro) so both use the task's current label set"
        )
    parent_id = manifest.get("mlflow_run_id")
    client = None
    if parent_id:  # fail before any work when the training's MLflow run is not where we would log
        with tracking.quiet_mlflow():
            tracking.configure(params)
            client = mlflow.MlflowClient()
            tracking.require_run(client, parent_id, params, str(model_path / "training.json"))
    texts = [str(row["text"]) for row in test]
    truth = [str(row["label"]) for row in test]

    runs = _seed_runs(manifest)
    per_seed: list[dict[str, Any]] = []
    for run in runs:
        classifier = TextClassifier.load(model_path / run["model_dir"])
        proba = classifier.predict_proba(texts)
        predicted = [classifier.labels[i] for i in proba.argmax(axis=1)]
        report = classification_metrics(truth, predicted, classifier.labels)
        truth_idx = np.array([classifier.labels.index(label) for label in truth])
        per_seed.append({
            "seed": run["seed"], "run_id": run.get("mlflow_run_id"), "labels": classifier.labels,
            "proba": proba, "predicted": predicted, "report": report,
            "ece": expected_calibration_error(proba, truth_idx),
        })
    selected_seed = manifest.get("selected_seed", per_seed[0]["seed"])
    chosen = next((s for s in per_seed if s["seed"] == selected_seed), per_seed[0])

    values = {
        "macro_f1": [s["report"]["macro_f1"] for s in per_seed],
        "accuracy": [s["report"]["accuracy"] for s in per_seed],
        "ece": [s["ece"] for s in per_seed],
    }
    summaries = {name: seed_summary(v, bounds=(0.0, 1.0)) for name, v in values.items()}
    metrics: dict[str, Any] = {
        "task": task, "condition": condition, "backbone": backbone,
        "macro_f1": summaries["macro_f1"]["mean"], "accuracy": summaries["accuracy"]["mean"],
        "ece": summaries["ece"]["mean"], "n_test": len(truth),
        "n_seeds": len(per_seed),
        **{
            key: value
            for name in ("macro_f1", "accuracy", "ece")
            for key, value in (
                (f"{name}_mean", summaries[name]["mean"]),
                (f"{name}_std", summaries[name]["std"]),
                (f"{name}_ci95", _ci(summaries[name])),
            )
        },
        "seeds": [
            {"seed": s["seed"], "macro_f1": s["report"]["macro_f1"], "accuracy": s["report"]["accuracy"],
             "ece": s["ece"]}
            for s in per_seed
        ],
        "selected": {"seed": chosen["seed"], "macro_f1": chosen["report"]["macro_f1"],
                     "accuracy": chosen["report"]["accuracy"], "ece": chosen["ece"]},
        "per_class": chosen["report"]["per_class"],
    }

    out = results_dir(task, condition, backbone, root)
    labels = chosen["labels"]
    several = len(per_seed) > 1

    def prediction_rows() -> Any:
        for i, (text, gold) in enumerate(zip(texts, truth, strict=True)):
            row: dict[str, Any] = {
                "text": text, "label": gold, "prediction": chosen["predicted"][i],
                "proba": {name: round(float(p), 6) for name, p in zip(labels, chosen["proba"][i], strict=True)},
            }
            if several:
                row["prediction_by_seed"] = {str(s["seed"]): s["predicted"][i] for s in per_seed}
            yield row

    write_jsonl(out / "predictions.jsonl", prediction_rows())
    confusion = chosen["report"]["confusion_matrix"]
    write_json(out / "confusion.json", confusion)
    plot_confusion(confusion["labels"], confusion["matrix"], out / "confusion.png",
                   title=f"{task} / {condition} / {backbone} (seed {chosen['seed']})")
    write_json(out / "metrics.json", metrics)

    if client is not None:
        with tracking.quiet_mlflow():
            for seed_result in per_seed:
                if seed_result["run_id"] and seed_result["run_id"] != parent_id:
                    for key, value in (("test_macro_f1", seed_result["report"]["macro_f1"]),
                                       ("test_accuracy", seed_result["report"]["accuracy"]),
                                       ("test_ece", seed_result["ece"])):
                        client.log_metric(seed_result["run_id"], key, value)
            summary_metrics = {"test_macro_f1": metrics["macro_f1"], "test_accuracy": metrics["accuracy"],
                               "test_ece": metrics["ece"]}
            for name in ("macro_f1", "accuracy"):
                if summaries[name]["std"] is not None:
                    summary_metrics[f"test_{name}_std"] = summaries[name]["std"]
                    summary_metrics[f"test_{name}_ci95_low"] = summaries[name]["ci_low"]
                    summary_metrics[f"test_{name}_ci95_high"] = summaries[name]["ci_high"]
            for key, value in summary_metrics.items():
                client.log_metric(parent_id, key, value)
            client.log_dict(parent_id, confusion, "evaluation/confusion.json")
            client.log_artifact(parent_id, str(out / "confusion.png"), "evaluation")
            client.log_dict(parent_id, metrics, "evaluation/metrics.json")
    return metrics
