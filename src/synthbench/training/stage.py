"""Train stage entry point: one (task, condition, backbone) → ``models/<task>/<condition>/<backbone>/`` (a DVC
out) and one MLflow parent run with a nested run per seed.

Layout of the model directory::

    training.json      the manifest: data sources + md5s, split sizes, ``seeds`` (one entry per seed: its
                       model_dir, MLflow run, best epoch, per-epoch history), the selected seed, MLflow ids
    seed_<s>/          one fine-tuned model (transformers format + tokenizer) per seed in train.seeds

MLflow: the parent run (tags task / condition / backbone / dataset md5) holds the params, the training data as
dataset inputs (digest = the DVC md5 of each file) and the mean/std validation metrics; each nested run holds
one seed's per-epoch curves. The seed with the best validation Macro-F1 (never the test set) is logged as a
pyfunc model (raw text in, label out) in its nested run and registered as ``synthbench-<task>-<condition>-
<backbone>``, its version tagged like the parent run plus the seed.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from synthbench import tracking
from synthbench.config import Params
from synthbench.data.io import read_jsonl, write_json
from synthbench.tasks import load_task
from synthbench.training.backbones import resolve_backbone
from synthbench.training.data import (
    TrainingData,
    build_training_data,
    check_label_coverage,
    parse_condition,
    source_path,
    validation_split,
)
from synthbench.training.finetune import FitResult, fine_tune

# MLflow "models from code": the file is logged with the model and run at load time (no pickles).
_PYFUNC_CODE = str(importlib.util.find_spec("synthbench.pyfunc_model").origin)  # type: ignore[union-attr]
# What the pyfunc needs at load time; listing it skips MLflow's slow requirement inference (it would load the
# model in a subprocess just to see what it imports).
_PIP_REQUIREMENTS = ("mlflow", "torch", "transformers", "pandas", "numpy", "synthbench")


def condition_data_path(task: str, condition: str, root: Path = Path(".")) -> Path:
    """The first data file a condition reads (the real train split for real, real+<mode> and real_n<N>)."""
    return source_path(task, parse_condition(condition).sources[0], root)


def model_dir(task: str, condition: str, backbone: str, root: Path = Path(".")) -> Path:
    return root / "models" / task / condition / backbone


def seed_dir_name(seed: int) -> str:
    return f"seed_{seed}"


def real_test_path(task: str, root: Path = Path(".")) -> Path:
    return root / "data" / "real" / task / "test.jsonl"


def select_seed(results: list[FitResult]) -> FitResult:
    """The run to deploy: best validation Macro-F1, then validation accuracy; the earlier seed on ties."""
    return max(results, key=lambda r: (r.best_val.get("val_macro_f1", -1.0), r.best_val.get("val_accuracy", -1.0)))


def _log_datasets(data: TrainingData, task: str) -> None:
    """Each source file as an MLflow dataset input: its rows, its path as source, DVC's md5 as digest."""
    import mlflow
    import pandas as pd

    for source in data.sources:
        frame = pd.DataFrame({"text": [t for t, _ in source.rows], "label": [lab for _, lab in source.rows]})
        dataset = mlflow.data.from_pandas(
            frame, source=str(source.path.resolve()), targets="label", name=f"{task}/{source.name}",
            digest=source.md5,
        )
        mlflow.log_input(dataset, context="training", tags={"synthbench.condition": data.condition.name})


def _aggregate(results: list[FitResult]) -> dict[str, float]:
    import numpy as np

    out: dict[str, float] = {}
    for key in ("val_macro_f1", "val_accuracy"):
        values = np.array([r.best_val.get(key, float("nan")) for r in results], dtype=float)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out["train_seconds_total"] = float(sum(r.train_seconds for r in results))
    return out


def run_train(task: str, condition: str, backbone: str, params: Params, root: Path = Path(".")) -> dict[str, Any]:
    """Train one model per seed in ``params.train.seed_list`` and log/register them; returns the manifest.
    Every input problem (condition, data, labels, split, backbone) is raised before any MLflow run starts."""
    import mlflow
    from mlflow.models import infer_signature

    spec = load_task(task, params.custom_tasks)
    labels = spec.label_names
    test_rows = read_jsonl(real_test_path(task, root))
    data = build_training_data(
        task, condition, labels, (str(row.get("text", "")) for row in test_rows), params.train.data_seed, root,
        modes=params.modes,
    )
    where = " + ".join(str(source.path) for source in data.sources)
    check_label_coverage(data.rows, {str(row["label"]) for row in test_rows if "label" in row}, where)
    train_rows, val_rows = validation_split(data.rows, params.train.val_fraction, params.train.data_seed)
    location = resolve_backbone(backbone)
    seeds = params.train.seed_list
    out_dir = model_dir(task, condition, backbone, root)
    registered = tracking.registered_model_name(task, condition, backbone) if params.tracking.register_models \
        else None

    started = time.perf_counter()
    with tracking.quiet_mlflow(), tempfile.TemporaryDirectory(prefix="synthbench-train-") as work:
        staging = Path(work) / "model"
        tracking.configure(params)
        tags = tracking.run_tags(task, condition, backbone, data.digest, stage="train")
        with mlflow.start_run(run_name=tracking.run_name(task, condition, backbone), tags=tags) as parent:
            mlflow.log_params({
                **{f"train.{k}": v for k, v in params.train.model_dump().items()},
                "train.seed_list": ",".join(map(str, seeds)),
                "backbone": backbone, "backbone_location": location, "n_train": len(train_rows),
                "n_val": len(val_rows), "labels": ",".join(labels),
                "data_path": " + ".join(str(s.path) for s in data.sources),
                "removed_test_overlap": data.removed["test_overlap"], "removed_duplicates": data.removed["duplicates"],
            })
            _log_datasets(data, task)
            results: list[FitResult] = []
            run_ids: dict[int, str] = {}
            for seed in seeds:
                with mlflow.start_run(run_name=tracking.seed_run_name(task, condition, backbone, seed),
                                      tags={**tags, tracking.TAG_SEED: str(seed)}, nested=True) as child:
                    run_ids[seed] = child.info.run_id
                    mlflow.log_params({"seed": seed, "backbone": backbone, "n_train": len(train_rows),
                                       "n_val": len(val_rows)})
                    _log_datasets(data, task)

                    def log_epoch(epoch: int, row: dict[str, float], seed: int = seed) -> None:
                        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
                        print(f"  seed {seed} epoch {epoch}: train_loss {row['train_loss']:.4f} "
                              f"val_macro_f1 {row['val_macro_f1']:.4f} val_accuracy {row['val_accuracy']:.4f}",
                              flush=True)

                    result = fine_tune(location, train_rows, val_rows, labels, params.train,
                                       staging / seed_dir_name(seed), Path(work) / "checkpoints",
                                       on_epoch=log_epoch, seed=seed)
                    mlflow.log_metrics({"best_epoch": result.best_epoch, "train_seconds": result.train_seconds,
                                        "train_examples_per_s": result.train_examples_per_s,
                                        **{f"best_{k}": v for k, v in result.best_val.items()}})
                    results.append(result)
            selected = select_seed(results)
            mlflow.log_metrics({**_aggregate(results), "selected_seed": selected.seed,
                                **{f"selected_{k}": v for k, v in selected.best_val.items()}})

            # The deployable model: the selected seed's, logged in its own nested run and registered.
            version = None
            with mlflow.start_run(run_id=run_ids[selected.seed], nested=True):
                # A column of strings: the model takes a list of texts, a Series or a one-column DataFrame.
                input_example = [text for text, _ in val_rows[:2]]
                signature = infer_signature(input_example, [labels[0]] * len(input_example))
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=_PYFUNC_CODE,
                    artifacts={"model_dir": str(staging / seed_dir_name(selected.seed))},
                    signature=signature,
                    input_example=input_example,
                    pip_requirements=list(_PIP_REQUIREMENTS),
                    registered_model_name=registered,
                )
                mlflow.set_tag(tracking.TAG_SELECTED, "true")
            if registered and info.registered_model_version is not None:
                version = str(info.registered_model_version)
                client = mlflow.MlflowClient()
                version_tags = {**tags, tracking.TAG_SEED: str(selected.seed),
                                tracking.TAG_PARENT_RUN: parent.info.run_id}
                for key, value in version_tags.items():
                    client.set_model_version_tag(registered, version, key, value)

            per_seed = [
                {"seed": r.seed, "model_dir": seed_dir_name(r.seed), "mlflow_run_id": run_ids[r.seed],
                 "best_epoch": r.best_epoch, "best_val": r.best_val, "history": r.history,
                 "train_seconds": round(r.train_seconds, 2), "train_examples_per_s": round(r.train_examples_per_s, 2),
                 "precision": r.precision, "device": r.device}
                for r in results
            ]
            manifest = {
                "task": task, "condition": condition, "backbone": backbone, "backbone_location": location,
                "labels": labels, "dataset": str(data.sources[0].path), "dataset_md5": data.digest,
                "data": data.describe(), "n_train": len(train_rows), "n_val": len(val_rows),
                "seeds": per_seed, "selected_seed": selected.seed, "selected_model_dir": seed_dir_name(selected.seed),
                "best_epoch": selected.best_epoch, "best_val": selected.best_val, "val_summary": _aggregate(results),
                "train_seconds": round(sum(r.train_seconds for r in results), 2),
                "train_examples_per_s": round(sum(r.train_examples_per_s for r in results) / len(results), 2),
                "mlflow_run_id": parent.info.run_id, "mlflow_experiment_id": parent.info.experiment_id,
                "registered_model": registered, "registered_version": version,
                "registered_run_id": run_ids[selected.seed],
                "wall_seconds": round(time.perf_counter() - started, 2),
            }
            write_json(staging / "training.json", manifest)
            mlflow.log_dict(manifest, "training.json")
        # Swap the finished models in only now, so a failed run never leaves a half model directory.
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), out_dir)
    return manifest

