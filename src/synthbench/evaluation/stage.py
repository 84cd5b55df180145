"""Evaluate stage: a trained model + the real test set → ``results/<task>/<condition>/<backbone>/``:
``metrics.json`` (DVC metrics), ``confusion.json``, ``predictions.jsonl``; metrics also go to the training's
MLflow run."""

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


def results_dir(task: str, condition: str, backbone: str, root: Path = Path(".")) -> Path:
    return root / "results" / task / condition / backbone


def run_evaluate(task: str, condition: str, backbone: str, params: Params, root: Path = Path(".")) -> dict[str, Any]:
    import mlflow

    model_path = root / "models" / task / condition / backbone
    manifest = read_json(model_path / "training.json")
    test_path = root / "data" / "real" / task / "test.jsonl"
    test = read_jsonl(test_path)
    if not test:
        raise DataError(f"{test_path}: empty test set; re-run prepare with a larger prepare.test_per_label")
    classifier = TextClassifier.load(model_path)
    unknown = sorted({row["label"] for row in test} - set(classifier.labels))
    if unknown:
        raise DataError(f"{test_path}: test labels {unknown} are not among the model's labels {classifier.labels}")
    texts = [row["text"] for row in test]
    truth = [row["label"] for row in test]
    proba = classifier.predict_proba(texts)
    predicted = [classifier.labels[i] for i in proba.argmax(axis=1)]
    report = classification_metrics(truth, predicted, classifier.labels)
    truth_idx = np.array([classifier.labels.index(label) for label in truth])
    ece = expected_calibration_error(proba, truth_idx)
    metrics = {
        "task": task, "condition": condition, "backbone": backbone,
        "macro_f1": report["macro_f1"], "accuracy": report["accuracy"], "ece": ece, "n_test": report["n"],
        "per_class": report["per_class"],
    }
    out = results_dir(task, condition, backbone, root)
    write_jsonl(out / "predictions.jsonl", (
        {"text": text, "label": gold, "prediction": pred,
         "proba": {name: round(float(p), 6) for name, p in zip(classifier.labels, row, strict=True)}}
        for text, gold, pred, row in zip(texts, truth, predicted, proba, strict=True)
    ))
    write_json(out / "confusion.json", report["confusion_matrix"])
    write_json(out / "metrics.json", metrics)
    run_id = manifest.get("mlflow_run_id")
    if run_id:
        with tracking.quiet_mlflow():
            tracking.configure(params)
            with mlflow.start_run(run_id=run_id):
                mlflow.log_metrics({"test_macro_f1": metrics["macro_f1"], "test_accuracy": metrics["accuracy"],
                                    "test_ece": ece})
                mlflow.log_dict(report["confusion_matrix"], "evaluation/confusion.json")
    return metrics
