"""Train stage: one (task, condition, backbone) → ``models/<task>/<condition>/<backbone>/`` (a DVC out) and one
MLflow parent run with a nested run per seed (every MLflow call lives in :mod:`synthbench.tracking`).

The model directory holds ``training.json`` (:class:`synthbench.records.TrainingManifest`), ``seed_<s>/``, one
fine-tuned model (transformers format + tokenizer) per seed in ``train.seeds``, and ``test_scores.npz``, each
seed's class probabilities on the test texts for the evaluate stage (scored after selection). The seed with the best
validation Macro-F1 (never the test set) is logged as a pyfunc model and registered as
``synthbench-<task>-<condition>-<backbone>``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthbench import tracking
from synthbench.classifier import TextClassifier, save_scores
from synthbench.conditions import REAL
from synthbench.config import TrackingParams, TrainParams
from synthbench.data.io import read_jsonl
from synthbench.data.sampling import Rows, validation_split
from synthbench.layout import LAYOUT, Layout
from synthbench.records import GenerationSummary, SeedRun, TrainingManifest
from synthbench.training.backbones import resolve_backbone
from synthbench.training.data import TrainingData, build_training_data, check_label_coverage
from synthbench.training.finetune import FitResult, fine_tune

# The train section keys a training reads; learning_curve_sizes only decides which trainings exist (dvc.yaml).
TRAIN_KEYS_READ = frozenset(TrainParams.model_fields) - {"learning_curve_sizes"}


def select_seed(results: list[FitResult]) -> FitResult:
    """The run to deploy: best validation Macro-F1, then validation accuracy; the earlier seed on ties."""
    return max(
        results, key=lambda r: (r.best_val.get("val_macro_f1", -1.0), r.best_val.get("val_accuracy", -1.0))
    )


def run_train(
    task: str,
    labels: Sequence[str],
    condition: str,
    backbone: str,
    *,
    train: TrainParams,
    tracking_params: TrackingParams,
    layout: Layout = LAYOUT,
) -> TrainingManifest:
    """Train one model per seed in ``train.seed_list`` and log/register them; returns the manifest. Every
    input problem (condition, data, labels, split, backbone) is raised before any MLflow run starts. ``labels``:
    the task's label names in order (``data/real/<task>/labels.json``)."""
    labels = list(labels)
    test_rows = read_jsonl(layout.real(task, "test"))
    test_texts = [str(row.get("text", "")) for row in test_rows]
    data = _training_data(task, labels, condition, train, test_rows, layout)
    train_rows, val_rows = validation_split(data.rows, train.val_fraction, train.data_seed)
    location = resolve_backbone(backbone)
    registered = (
        tracking.registered_model_name(task, condition, backbone) if tracking_params.register_models else None
    )
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="synthbench-train-") as work,
        tracking.training_run(tracking_params, task, condition, backbone, data.digest) as run,
    ):
        staging = Path(work) / "model"
        cost_params, cost_metrics = generation_costs(task, data, layout)
        run.log_inputs(
            {**_logged_params(train, backbone, location, train_rows, val_rows, labels, data), **cost_params},
            [tracking.DatasetInput(s.name, s.path, s.md5, s.rows) for s in data.sources],
        )
        run.log_metrics(cost_metrics)
        results = [
            _fit_seed(run, seed, location, train_rows, val_rows, labels, train, staging, Path(work))
            for seed in train.seed_list
        ]
        selected = select_seed(results)
        run.log_metrics(
            {
                **_aggregate(results),
                "selected_seed": selected.seed,
                **{f"selected_{k}": v for k, v in selected.best_val.items()},
            }
        )
        version = run.log_model(
            selected.seed,
            staging / Layout.seed_dir_name(selected.seed),
            [text for text, _ in val_rows[:2]],
            labels[0],
            registered,
        )
        manifest = _manifest(
            run,
            results,
            selected,
            data,
            location,
            labels,
            (train_rows, val_rows),
            registered,
            version,
            time.perf_counter() - started,
        )
        manifest.write(staging / "training.json")
        _score_test_texts(
            staging, results, test_texts, labels, layout.test_scores(task, condition, backbone).name
        )
        run.log_manifest(manifest.model_dump(mode="json"))
        _swap_in(staging, layout.model(task, condition, backbone))
    return manifest


def _training_data(
    task: str,
    labels: list[str],
    condition: str,
    train: TrainParams,
    test_rows: list[dict[str, Any]],
    layout: Layout,
) -> TrainingData:
    data = build_training_data(
        task, condition, labels, (str(r.get("text", "")) for r in test_rows), train.data_seed, layout
    )
    where = " + ".join(str(source.path) for source in data.sources)
    check_label_coverage(data.rows, {str(row["label"]) for row in test_rows if "label" in row}, where)
    return data


def generation_costs(
    task: str, data: TrainingData, layout: Layout
) -> tuple[dict[str, object], dict[str, float]]:
    """What each synthetic source of ``data`` cost to generate, from its generate summary (at the price paid:
    a Batch API run's price factor is 0.5): params ``generation.<mode>.{endpoint_mode,price_factor,model}`` and
    metrics ``generation.<mode>.{cost_usd,prompt_tokens,completion_tokens,calls_made}`` (USD, tokens, calls).
    A source without a summary (rows written by hand) logs nothing."""
    params: dict[str, object] = {}
    metrics: dict[str, float] = {}
    for source in data.sources:
        path = layout.synthetic_summary(task, source.name)
        if source.name == REAL or not path.exists():
            continue
        summary = GenerationSummary.read(path)
        prefix = f"generation.{source.name}"
        params.update(
            {
                f"{prefix}.endpoint_mode": summary.endpoint_mode,
                f"{prefix}.price_factor": summary.price_factor,
                f"{prefix}.model": summary.model,
            }
        )
        for key in ("cost_usd", "prompt_tokens", "completion_tokens", "calls_made"):
            value = summary.client.get(key)
            if isinstance(value, int | float):
                metrics[f"{prefix}.{key}"] = float(value)
    return params, metrics


def _logged_params(
    train: TrainParams,
    backbone: str,
    location: str,
    train_rows: Rows,
    val_rows: Rows,
    labels: list[str],
    data: TrainingData,
) -> dict[str, object]:
    return {
        **{f"train.{k}": v for k, v in train.model_dump(include=set(TRAIN_KEYS_READ)).items()},
        "train.seed_list": ",".join(map(str, train.seed_list)),
        "backbone": backbone,
        "backbone_location": location,
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "labels": ",".join(labels),
        "data_path": " + ".join(str(s.path) for s in data.sources),
        "removed_test_overlap": data.removed["test_overlap"],
        "removed_duplicates": data.removed["duplicates"],
    }


def _fit_seed(
    run: tracking.TrainingRun,
    seed: int,
    location: str,
    train_rows: Rows,
    val_rows: Rows,
    labels: list[str],
    train: TrainParams,
    staging: Path,
    work: Path,
) -> FitResult:
    seed_params = {"backbone": run.backbone, "n_train": len(train_rows), "n_val": len(val_rows)}
    with run.seed_run(seed, seed_params) as log_epoch:

        def on_epoch(epoch: int, row: dict[str, float]) -> None:
            log_epoch(epoch, row)
            print(
                f"  seed {seed} epoch {epoch}: train_loss {row['train_loss']:.4f} "
                f"val_macro_f1 {row['val_macro_f1']:.4f} val_accuracy {row['val_accuracy']:.4f}",
                flush=True,
            )

        result = fine_tune(
            location,
            train_rows,
            val_rows,
            labels,
            train,
            staging / Layout.seed_dir_name(seed),
            work / "checkpoints",
            on_epoch=on_epoch,
            seed=seed,
        )
        run.log_metrics(
            {
                "best_epoch": result.best_epoch,
                "train_seconds": result.train_seconds,
                "train_examples_per_s": result.train_examples_per_s,
                **{f"best_{k}": v for k, v in result.best_val.items()},
            }
        )
    return result


def _score_test_texts(
    staging: Path, results: list[FitResult], texts: list[str], labels: list[str], name: str
) -> None:
    """Each seed's probabilities on the test texts, while torch and transformers are loaded anyway: it spares the
    evaluate stage their start-up (~6 s a stage on 2 cores). The models were already selected on validation."""
    proba = {
        r.seed: TextClassifier.load(staging / Layout.seed_dir_name(r.seed)).predict_proba(texts)
        for r in results
    }
    save_scores(staging / name, texts, labels, proba)


def _aggregate(results: list[FitResult]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("val_macro_f1", "val_accuracy"):
        values = np.array([r.best_val.get(key, float("nan")) for r in results], dtype=float)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out["train_seconds_total"] = float(sum(r.train_seconds for r in results))
    return out


def _manifest(
    run: tracking.TrainingRun,
    results: list[FitResult],
    selected: FitResult,
    data: TrainingData,
    location: str,
    labels: list[str],
    splits: tuple[Rows, Rows],
    registered: str | None,
    version: str | None,
    wall_seconds: float,
) -> TrainingManifest:
    seeds = [
        SeedRun(
            seed=r.seed,
            model_dir=Layout.seed_dir_name(r.seed),
            mlflow_run_id=run.seed_run_ids[r.seed],
            best_epoch=r.best_epoch,
            best_val=r.best_val,
            history=r.history,
            train_seconds=round(r.train_seconds, 2),
            train_examples_per_s=round(r.train_examples_per_s, 2),
            precision=r.precision,
            device=r.device,
        )
        for r in results
    ]
    return TrainingManifest(
        task=run.task,
        condition=run.condition,
        backbone=run.backbone,
        backbone_location=location,
        labels=labels,
        dataset=str(data.sources[0].path),
        dataset_md5=data.digest,
        data=data.describe(),
        n_train=len(splits[0]),
        n_val=len(splits[1]),
        seeds=seeds,
        selected_seed=selected.seed,
        selected_model_dir=Layout.seed_dir_name(selected.seed),
        best_epoch=selected.best_epoch,
        best_val=selected.best_val,
        val_summary=_aggregate(results),
        train_seconds=round(sum(r.train_seconds for r in results), 2),
        train_examples_per_s=round(sum(r.train_examples_per_s for r in results) / len(results), 2),
        mlflow_run_id=run.run_id,
        mlflow_experiment_id=run.experiment_id,
        registered_model=registered,
        registered_version=version,
        registered_run_id=run.seed_run_ids[selected.seed],
        wall_seconds=round(wall_seconds, 2),
    )


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Move the finished models in only now, so a failed run never leaves a half model directory."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), out_dir)
