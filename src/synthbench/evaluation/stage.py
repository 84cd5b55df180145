"""Evaluate stage: the trained models (one per seed) + the real test set → ``results/<task>/<condition>/<backbone>/``:

``metrics.json`` (DVC metrics; :class:`synthbench.records.EvaluationMetrics`)
    ``macro_f1`` / ``accuracy`` / ``ece``: the mean over the training seeds (what the summary compares), also
    as ``macro_f1_mean`` …, with ``macro_f1_std`` (ddof=1) and ``macro_f1_ci95`` {low, high} (Student-t
    interval of the mean, clipped to [0, 1]; both null with a single seed), the same for accuracy and ECE;
    ``seeds``: one {seed, macro_f1, accuracy, ece} per training seed; ``selected``: the deployed (registered)
    model's scores; ``per_class``: its precision / recall / F1 / support per label.
``predictions.jsonl``
    per test text: gold label, the deployed model's prediction and class probabilities (and every seed's
    prediction when there are several seeds).
``confusion.json`` / ``confusion.png``
    the deployed model's confusion matrix (rows = true, columns = predicted, task label order).

Test metrics are also logged to the training's MLflow runs (:func:`synthbench.tracking.log_evaluation`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthbench import tracking
from synthbench.classifier import TextClassifier, load_scores
from synthbench.config import TrackingParams
from synthbench.data.io import read_jsonl, write_json, write_jsonl
from synthbench.errors import DataError
from synthbench.evaluation.metrics import classification_metrics, expected_calibration_error
from synthbench.evaluation.plots import plot_confusion
from synthbench.layout import LAYOUT, Layout
from synthbench.records import EvaluationMetrics, Interval, SeedRun, SeedScore, TrainingManifest
from synthbench.stats import seed_summary


@dataclass
class SeedEvaluation:
    """One seed's model on the test set: probabilities float32 (n_test, n_labels) in ``labels`` order."""

    run: SeedRun
    labels: list[str]
    proba: np.ndarray
    predicted: list[str]
    report: dict[str, Any]
    ece: float

    @property
    def score(self) -> SeedScore:
        return SeedScore(
            seed=self.run.seed,
            macro_f1=self.report["macro_f1"],
            accuracy=self.report["accuracy"],
            ece=self.ece,
        )


def run_evaluate(
    task: str, condition: str, backbone: str, *, tracking_params: TrackingParams, layout: Layout = LAYOUT
) -> EvaluationMetrics:
    """Score every seed's model of (task, condition, backbone) on the real test set; write and log the results."""
    manifest_path = layout.training_manifest(task, condition, backbone)
    manifest = TrainingManifest.read(manifest_path)
    texts, truth = _read_test(layout.real(task, "test"), manifest.labels)
    client = tracking.open_training_run(tracking_params, manifest.mlflow_run_id, str(manifest_path))
    model_dir = layout.model(task, condition, backbone)
    scores = layout.test_scores(task, condition, backbone)
    per_seed = [
        _evaluate_seed(
            model_dir / run.model_dir,
            run,
            texts,
            truth,
            manifest.labels,
            load_scores(scores, texts, manifest.labels, run.seed),
        )
        for run in manifest.seeds
    ]
    chosen = next(s for s in per_seed if s.run.seed == manifest.selected_seed)
    metrics = _metrics(task, condition, backbone, per_seed, chosen, len(truth))
    _write_predictions(layout.predictions(task, condition, backbone), texts, truth, chosen, per_seed)
    confusion = chosen.report["confusion_matrix"]
    write_json(layout.confusion(task, condition, backbone), confusion)
    png = layout.confusion_png(task, condition, backbone)
    plot_confusion(
        confusion["labels"],
        confusion["matrix"],
        png,
        title=f"{task} / {condition} / {backbone} (seed {chosen.run.seed})",
    )
    metrics.write(layout.metrics(task, condition, backbone))
    tracking.log_evaluation(
        client,
        manifest.mlflow_run_id,
        {
            s.run.mlflow_run_id: {
                "test_macro_f1": s.score.macro_f1,
                "test_accuracy": s.score.accuracy,
                "test_ece": s.score.ece,
            }
            for s in per_seed
            if s.run.mlflow_run_id
        },
        _summary_metrics(metrics),
        {"confusion.json": confusion, "metrics.json": metrics.model_dump(mode="json")},
        [png],
    )
    return metrics


def _read_test(path: Path, model_labels: Sequence[str]) -> tuple[list[str], list[str]]:
    test = read_jsonl(path)
    if not test:
        raise DataError(f"{path}: empty test set; re-run prepare with a larger prepare.test_per_label")
    unknown = sorted({str(row["label"]) for row in test} - set(model_labels))
    if unknown:
        raise DataError(
            f"{path}: test labels {unknown} are not among the model's labels {list(model_labels)}; re-run prepare "
            f"and train for this task (dvc repro) so both use the task's current label set"
        )
    return [str(row["text"]) for row in test], [str(row["label"]) for row in test]


def _evaluate_seed(
    model_dir: Path,
    run: SeedRun,
    texts: list[str],
    truth: list[str],
    labels: list[str],
    proba: np.ndarray | None,
) -> SeedEvaluation:
    """One seed's scores: ``proba``, the probabilities the train stage saved for these texts in ``labels`` order,
    or when None the model's own (loading torch and transformers: most of this stage's time)."""
    if proba is None:
        classifier = TextClassifier.load(model_dir)
        labels, proba = classifier.labels, classifier.predict_proba(texts)
    predicted = [labels[i] for i in proba.argmax(axis=1)]
    truth_idx = np.array([labels.index(label) for label in truth])
    return SeedEvaluation(
        run=run,
        labels=labels,
        proba=proba,
        predicted=predicted,
        report=classification_metrics(truth, predicted, labels),
        ece=expected_calibration_error(proba, truth_idx),
    )


def _metrics(
    task: str,
    condition: str,
    backbone: str,
    per_seed: list[SeedEvaluation],
    chosen: SeedEvaluation,
    n_test: int,
) -> EvaluationMetrics:
    fields: dict[str, Any] = {}
    for name in ("macro_f1", "accuracy", "ece"):
        summary = seed_summary([getattr(s.score, name) for s in per_seed], bounds=(0.0, 1.0))
        ci = None if summary["ci_low"] is None else Interval(low=summary["ci_low"], high=summary["ci_high"])
        fields |= {
            name: summary["mean"],
            f"{name}_mean": summary["mean"],
            f"{name}_std": summary["std"],
            f"{name}_ci95": ci,
        }
    return EvaluationMetrics(
        task=task,
        condition=condition,
        backbone=backbone,
        n_test=n_test,
        n_seeds=len(per_seed),
        seeds=[s.score for s in per_seed],
        selected=chosen.score,
        per_class=chosen.report["per_class"],
        **fields,
    )


def _summary_metrics(metrics: EvaluationMetrics) -> dict[str, float]:
    out = {"test_macro_f1": metrics.macro_f1, "test_accuracy": metrics.accuracy, "test_ece": metrics.ece}
    for name in ("macro_f1", "accuracy"):
        std, ci = getattr(metrics, f"{name}_std"), getattr(metrics, f"{name}_ci95")
        if std is not None and ci is not None:
            out |= {
                f"test_{name}_std": std,
                f"test_{name}_ci95_low": ci.low,
                f"test_{name}_ci95_high": ci.high,
            }
    return out


def _write_predictions(
    path: Path, texts: list[str], truth: list[str], chosen: SeedEvaluation, per_seed: list[SeedEvaluation]
) -> None:
    def rows() -> Iterator[dict[str, Any]]:
        for i, (text, gold) in enumerate(zip(texts, truth, strict=True)):
            row: dict[str, Any] = {
                "text": text,
                "label": gold,
                "prediction": chosen.predicted[i],
                "proba": {
                    name: round(float(p), 6) for name, p in zip(chosen.labels, chosen.proba[i], strict=True)
                },
            }
            if len(per_seed) > 1:
                row["prediction_by_seed"] = {str(s.run.seed): s.predicted[i] for s in per_seed}
            yield row

    write_jsonl(path, rows())
