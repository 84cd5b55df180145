"""Well-formed stage records for tests that build a completed run by hand (no training, no evaluation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthbench.analysis.stage import Study
from synthbench.config import AnalysisParams, EndpointParams, GenerateParams, Params
from synthbench.layout import Layout
from synthbench.records import EvaluationMetrics, SeedRun, SeedScore, TrainingManifest
from synthbench.tasks import load_task
from synthbench.tasks.snapshot import write_task_snapshot


def training_manifest(
    task: str,
    condition: str,
    backbone: str,
    histories: Sequence[list[dict[str, float]]] = ([],),
    n_train: int = 90,
    n_val: int = 10,
    labels: Sequence[str] = ("a", "b"),
) -> TrainingManifest:
    """One seed per entry of ``histories`` (seeds 0, 1, …); seed 0 selected."""
    seeds = [
        SeedRun(
            seed=s,
            model_dir=f"seed_{s}",
            mlflow_run_id=f"run{s}",
            best_epoch=1,
            best_val={},
            history=history,
            train_seconds=1.0,
            train_examples_per_s=1.0,
            precision="fp32",
            device="cpu",
        )
        for s, history in enumerate(histories)
    ]
    return TrainingManifest(
        task=task,
        condition=condition,
        backbone=backbone,
        backbone_location="x",
        labels=list(labels),
        dataset="d.jsonl",
        dataset_md5="0",
        data={},
        n_train=n_train,
        n_val=n_val,
        seeds=seeds,
        selected_seed=0,
        selected_model_dir="seed_0",
        best_epoch=1,
        best_val={},
        val_summary={},
        train_seconds=1.0,
        train_examples_per_s=1.0,
        mlflow_run_id="r",
        mlflow_experiment_id="0",
        registered_model=None,
        registered_version=None,
        registered_run_id="run0",
        wall_seconds=1.0,
    )


def evaluation_metrics(
    task: str,
    condition: str,
    backbone: str,
    macro_f1: Sequence[float],
    accuracy: Sequence[float] | None = None,
    n_test: int = 6,
    per_class: dict[str, dict[str, float]] | None = None,
    macro_f1_std: float | None = None,
) -> EvaluationMetrics:
    """One seed per value of ``macro_f1``; means, std (ddof=1, or ``macro_f1_std``) as the evaluation writes."""
    import numpy as np

    accuracy = list(accuracy if accuracy is not None else macro_f1)
    seeds = [
        SeedScore(seed=s, macro_f1=f, accuracy=a, ece=0.1)
        for s, (f, a) in enumerate(zip(macro_f1, accuracy, strict=True))
    ]

    def std(values: Sequence[float]) -> float | None:
        return float(np.std(values, ddof=1)) if len(values) > 1 else None

    return EvaluationMetrics(
        task=task,
        condition=condition,
        backbone=backbone,
        macro_f1=float(np.mean(macro_f1)),
        accuracy=float(np.mean(accuracy)),
        ece=0.1,
        n_test=n_test,
        n_seeds=len(seeds),
        macro_f1_mean=float(np.mean(macro_f1)),
        macro_f1_std=macro_f1_std if macro_f1_std is not None else std(macro_f1),
        macro_f1_ci95=None,
        accuracy_mean=float(np.mean(accuracy)),
        accuracy_std=std(accuracy),
        accuracy_ci95=None,
        ece_mean=0.1,
        ece_std=None,
        ece_ci95=None,
        seeds=seeds,
        selected=seeds[0],
        per_class=per_class or {},
    )


def write_snapshots(root: Path, tasks: Sequence[str]) -> None:
    """The task.json prepare writes for each built-in task."""
    for task in tasks:
        write_task_snapshot(load_task(task), root / "data" / "real" / task / "task.json")


def study(params: Params | dict[str, Any], root: Path, analysis: dict[str, Any] | None = None) -> Study:
    """The analyze stage's inputs, as the CLI builds them, for a study whose snapshots are under ``root``."""
    p = params if isinstance(params, Params) else Params.model_validate(params)
    write_snapshots(root, p.tasks)
    return Study(
        tasks=list(p.tasks),
        modes=list(p.modes),
        conditions=list(p.conditions),
        backbones=list(p.backbones),
        seed=p.seed,
        specs={t: load_task(t) for t in p.tasks},
        settings=AnalysisParams.model_validate(analysis or {}),
    )


# --- the stage functions called as the CLI calls them, on a project rooted at ``root`` -------------------------
def prepare_stage(task: str, params: Params, root: Path) -> dict[str, object]:
    from synthbench.prepare import run_prepare

    return run_prepare(
        load_task(task, params.custom_tasks),
        seed=params.seed,
        prepare=params.prepare,
        local_source=params.local_sources.get(task),
        data_folder=params.task_files.data,
        layout=Layout(root),
    )


def train_stage(task: str, condition: str, backbone: str, params: Params, root: Path) -> TrainingManifest:
    from synthbench.training.stage import run_train

    return run_train(
        task,
        load_task(task, params.custom_tasks).label_names,
        condition,
        backbone,
        train=params.train,
        tracking_params=params.tracking,
        layout=Layout(root),
    )


def evaluate_stage(task: str, condition: str, backbone: str, params: Params, root: Path) -> EvaluationMetrics:
    from synthbench.evaluation.stage import run_evaluate

    return run_evaluate(task, condition, backbone, tracking_params=params.tracking, layout=Layout(root))


def champion_stage(params: Params, root: Path) -> dict[str, dict[str, Any]]:
    from synthbench.evaluation.compare import run_champion

    return run_champion(
        params.tasks,
        params.conditions,
        params.backbones,
        tracking_params=params.tracking,
        layout=Layout(root),
    )


def server_generate(
    base_url: str, journal: str | Path, *, endpoint: dict[str, Any] | None = None, **fields: Any
) -> GenerateParams:
    """``generate`` params against the OpenAI-compatible test server at ``base_url`` (model "m", no key), with
    the settings its echo answers need (at least 3 and at most 500 words, exact duplicates only); ``fields``
    override or add any other ``generate`` setting, ``endpoint`` any endpoint setting."""
    settings: dict[str, Any] = {"min_words": 3, "max_words": 500, "near_duplicate_threshold": None}
    return GenerateParams(
        endpoint=EndpointParams(
            kind="openai", base_url=base_url, model="m", api_key_env=None, **(endpoint or {})
        ),
        journal=str(journal),
        **{**settings, **fields},
    )
