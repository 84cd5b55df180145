"""Compare evaluated conditions: a paired bootstrap of two conditions' test predictions, and the ``champion``
alias on each task's best registered model. Both read what the evaluate stage wrote (``results/…``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synthbench import tracking
from synthbench.config import TrackingParams
from synthbench.data.io import read_jsonl, write_json
from synthbench.errors import DataError
from synthbench.layout import LAYOUT, Layout
from synthbench.records import EvaluationMetrics, TrainingManifest
from synthbench.stats import paired_bootstrap


def compare_conditions(
    task: str,
    condition_a: str,
    condition_b: str,
    backbone: str,
    layout: Layout = LAYOUT,
    metric: str = "macro_f1",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap of metric(a) − metric(b) over the real test set, from the deployed models'
    ``predictions.jsonl`` of both conditions (same test texts, same order)."""
    rows = {name: read_jsonl(layout.predictions(task, name, backbone)) for name in (condition_a, condition_b)}
    a, b = rows[condition_a], rows[condition_b]
    if [r["text"] for r in a] != [r["text"] for r in b]:
        raise DataError(
            f"results/{task}: {condition_a} and {condition_b} were scored on different test sets; re-run "
            f"evaluate for both (dvc repro)"
        )
    result = paired_bootstrap(
        [r["label"] for r in a],
        [r["prediction"] for r in a],
        [r["prediction"] for r in b],
        metric=metric,
        n_resamples=n_resamples,
        seed=seed,
    )
    return {
        "task": task,
        "backbone": backbone,
        "a": condition_a,
        "b": condition_b,
        "metric": metric,
        **result,
    }


def best_condition(metrics: Sequence[EvaluationMetrics]) -> EvaluationMetrics:
    """The evaluation with the highest mean test Macro-F1, then accuracy; the earlier one on ties."""
    if not metrics:
        raise DataError("no evaluations to choose a champion from; run the evaluate stage first")
    return max(metrics, key=lambda m: (m.macro_f1, m.accuracy))  # max keeps the first on ties


def run_champion(
    tasks: Sequence[str],
    conditions: Sequence[str],
    backbones: Sequence[str],
    *,
    tracking_params: TrackingParams,
    layout: Layout = LAYOUT,
) -> dict[str, dict[str, Any]]:
    """For each task, point the MLflow alias ``champion`` at the registered model of its best (condition,
    backbone) by mean test Macro-F1, and at a copy of it in the task-level model ``synthbench-<task>`` (load the
    best model of a task with ``mlflow.pyfunc.load_model("models:/synthbench-<task>@champion")``). Writes and
    returns ``reports/champions.json``: task → condition, backbone, macro_f1, accuracy, models and versions."""
    client = tracking.champion_client(tracking_params) if tracking_params.register_models else None
    champions: dict[str, dict[str, Any]] = {}
    for task in tasks:
        evaluated = [
            EvaluationMetrics.read(layout.metrics(task, c, b)) for c in conditions for b in backbones
        ]
        best = best_condition(evaluated)
        manifest_path = layout.training_manifest(task, best.condition, best.backbone)
        manifest = TrainingManifest.read(manifest_path)
        entry: dict[str, Any] = {
            "condition": best.condition,
            "backbone": best.backbone,
            "macro_f1": best.macro_f1,
            "accuracy": best.accuracy,
            "registered_model": manifest.registered_model,
            "version": manifest.registered_version,
        }
        if client is None or not manifest.registered_model or not manifest.registered_version:
            champions[task] = {**entry, "note": "no registered model (tracking.register_models is false)"}
            continue
        others = [tracking.registered_model_name(task, m.condition, m.backbone) for m in evaluated]
        task_version = tracking.set_champion(
            client,
            tracking_params,
            task,
            manifest.registered_model,
            manifest.registered_version,
            others,
            str(manifest_path),
        )
        name = tracking.task_model_name(task)
        champions[task] = {
            **entry,
            "task_model": name,
            "task_model_version": task_version,
            "uri": f"models:/{name}@{tracking.CHAMPION_ALIAS}",
        }
    write_json(layout.champions, champions)
    return champions
