"""Compare evaluated conditions: a paired bootstrap of two conditions' test predictions, and the ``champion``
alias on each task's best registered model. Both read what the evaluate stage wrote (``results/…``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthbench import tracking
from synthbench.config import Params
from synthbench.data.io import read_json, read_jsonl, write_json
from synthbench.errors import ConfigError, DataError
from synthbench.evaluation.stage import results_dir
from synthbench.evaluation.stats import paired_bootstrap


def compare_conditions(
    task: str,
    condition_a: str,
    condition_b: str,
    backbone: str,
    root: Path = Path("."),
    metric: str = "macro_f1",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap of metric(a) − metric(b) over the real test set, from the deployed models'
    ``predictions.jsonl`` of both conditions (same test texts, same order)."""
    rows = {
        name: read_jsonl(results_dir(task, name, backbone, root) / "predictions.jsonl")
        for name in (condition_a, condition_b)
    }
    a, b = rows[condition_a], rows[condition_b]
    if [r["text"] for r in a] != [r["text"] for r in b]:
        raise DataError(
            f"results/{task}: {condition_a} and {condition_b} were scored on different test sets; re-run "
            f"evaluate for both (dvc repro)"
        )
    result = paired_bootstrap(
        [r["label"] for r in a], [r["prediction"] for r in a], [r["prediction"] for r in b],
        metric=metric, n_resamples=n_resamples, seed=seed,
    )
    return {"task": task, "backbone": backbone, "a": condition_a, "b": condition_b, "metric": metric, **result}


def best_condition(metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation with the highest mean test Macro-F1, then accuracy; the earlier one on ties."""
    if not metrics:
        raise DataError("no evaluations to choose a champion from; run the evaluate stage first")
    return max(metrics, key=lambda m: (m["macro_f1"], m["accuracy"]))  # max keeps the first on ties


def set_champions(
    params: Params, root: Path = Path("."), conditions: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """For each task, point the MLflow alias ``champion`` at the registered model of its best (condition,
    backbone) by mean test Macro-F1 (over ``conditions``, default ``params.conditions``, × ``params.backbones``).

    Two aliases are set: on the winner's own registered model (``synthbench-<task>-<condition>-<backbone>``;
    removed from the task's other conditions) and on the task-level model ``synthbench-<task>``, which gets
    a copy of the winning version (copied once; re-running with the same winner copies nothing). Load the best
    model of a task with ``mlflow.pyfunc.load_model("models:/synthbench-<task>@champion")``. Writes and
    returns ``reports/champions.json``: task → condition, backbone, macro_f1, accuracy, models and versions.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    candidates = list(conditions or params.conditions)
    champions: dict[str, dict[str, Any]] = {}
    with tracking.quiet_mlflow():
        tracking.configure(params)
        client = mlflow.MlflowClient()
        for task in params.tasks:
            evaluated = [
                {**read_json(results_dir(task, condition, backbone, root) / "metrics.json"),
                 "condition": condition, "backbone": backbone}
                for condition in candidates for backbone in params.backbones
            ]
            best = best_condition(evaluated)
            manifest = read_json(root / "models" / task / best["condition"] / best["backbone"] / "training.json")
            entry: dict[str, Any] = {
                "condition": best["condition"], "backbone": best["backbone"], "macro_f1": best["macro_f1"],
                "accuracy": best["accuracy"], "registered_model": manifest.get("registered_model"),
                "version": manifest.get("registered_version"),
            }
            if not params.tracking.register_models or not entry["registered_model"] or not entry["version"]:
                champions[task] = {**entry, "note": "no registered model (tracking.register_models is false)"}
                continue
            name, version = entry["registered_model"], str(entry["version"])
            try:
                winner = client.get_model_version(name, version)
            except MlflowException:
                raise ConfigError(
                    f"registered model {name} version {version} (from models/{task}/{best['condition']}/"
                    f"{best['backbone']}/training.json) is not in the tracking store {params.tracking_uri}; use "
                    f"the MLFLOW_TRACKING_URI it was trained with, or re-train there"
                ) from None
            client.set_registered_model_alias(name, tracking.CHAMPION_ALIAS, version)
            for other in evaluated:
                other_name = tracking.registered_model_name(task, other["condition"], other["backbone"])
                if other_name != name:
                    _drop_alias(client, other_name)
            task_name = tracking.task_model_name(task)
            source = f"{name}/{version}"
            current = _alias_version(client, task_name)
            if current is None or current.tags.get(tracking.TAG_SOURCE_MODEL) != source:
                copied = client.copy_model_version(f"models:/{name}/{version}", task_name)
                for key, value in {**winner.tags,
                                   tracking.TAG_SOURCE_MODEL: source}.items():
                    client.set_model_version_tag(task_name, copied.version, key, value)
                client.set_registered_model_alias(task_name, tracking.CHAMPION_ALIAS, copied.version)
                task_version = str(copied.version)
            else:
                task_version = str(current.version)
            champions[task] = {**entry, "task_model": task_name, "task_model_version": task_version,
                               "uri": f"models:/{task_name}@{tracking.CHAMPION_ALIAS}"}
    write_json(root / "reports" / "champions.json", champions)
    return champions


def _alias_version(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, tracking.CHAMPION_ALIAS)
    except MlflowException:
        return None


def _drop_alias(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # the model does not exist or never had the alias
        client.delete_registered_model_alias(name, tracking.CHAMPION_ALIAS)
