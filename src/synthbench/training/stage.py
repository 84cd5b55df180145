"""Train stage entry point: one (task, condition, backbone) → ``models/<task>/<condition>/<backbone>/`` (a DVC
out) and one MLflow run with params, per-epoch metrics, the model (pyfunc: raw text → label) and a registered
model version tagged with task, condition, backbone and the training data's DVC hash."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from synthbench import tracking
from synthbench.config import Params
from synthbench.data.io import file_md5, read_jsonl, write_json
from synthbench.errors import DataError
from synthbench.tasks import load_task
from synthbench.training.backbones import resolve_backbone
from synthbench.training.finetune import fine_tune, validation_split


# MLflow "models from code": the file is logged with the model and run at load time (no pickles).
_PYFUNC_CODE = str(importlib.util.find_spec("synthbench.pyfunc_model").origin)  # type: ignore[union-attr]


def condition_data_path(task: str, condition: str, root: Path = Path(".")) -> Path:
    """Where the train stage reads a condition's data (prepare and generate write these)."""
    if condition == "real":
        return root / "data" / "real" / task / "train.jsonl"
    return root / "data" / "synthetic" / task / f"{condition}.jsonl"


def model_dir(task: str, condition: str, backbone: str, root: Path = Path(".")) -> Path:
    return root / "models" / task / condition / backbone


def _load_rows(path: Path, labels: list[str]) -> list[tuple[str, str]]:
    rows = read_jsonl(path)
    out: list[tuple[str, str]] = []
    for line_no, row in enumerate(rows, start=1):
        if "text" not in row or "label" not in row:
            raise DataError(f"{path}:{line_no}: a row needs 'text' and 'label'; regenerate the file")
        if row["label"] not in labels:
            raise DataError(f"{path}:{line_no}: label {row['label']!r} not in the task's labels {labels}")
        out.append((str(row["text"]), str(row["label"])))
    if not out:
        raise DataError(f"{path}: no training rows; check the generate/prepare summary for rejections")
    return out


def run_train(task: str, condition: str, backbone: str, params: Params, root: Path = Path(".")) -> dict[str, Any]:
    import mlflow
    from mlflow.models import infer_signature

    spec = load_task(task, params.custom_tasks)
    labels = spec.label_names
    data_path = condition_data_path(task, condition, root)
    rows = _load_rows(data_path, labels)
    train_rows, val_rows = validation_split(rows, params.train.val_fraction, params.train.seed)
    location = resolve_backbone(backbone)
    dataset_md5 = file_md5(data_path)
    out_dir = model_dir(task, condition, backbone, root)

    with tracking.quiet_mlflow():
        tracking.configure(params)
        tags = {
            tracking.TAG_TASK: task,
            tracking.TAG_CONDITION: condition,
            tracking.TAG_BACKBONE: backbone,
            tracking.TAG_DATASET_MD5: dataset_md5,
            tracking.TAG_STAGE: "train",
        }
        with mlflow.start_run(run_name=tracking.run_name(task, condition, backbone), tags=tags) as run:
            mlflow.log_params({
                **{f"train.{k}": v for k, v in params.train.model_dump().items()},
                "backbone": backbone, "backbone_location": location, "n_train": len(train_rows),
                "n_val": len(val_rows), "labels": ",".join(labels), "data_path": str(data_path),
            })
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="synthbench-train-") as work:
                staging = Path(work) / "model"

                def log_epoch(epoch: int, row: dict[str, float]) -> None:
                    mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)

                result = fine_tune(location, train_rows, val_rows, labels, params.train, staging,
                                   Path(work) / "checkpoints", on_epoch=log_epoch)
                mlflow.log_metrics({"best_epoch": result.best_epoch, "train_examples_per_s":
                                    result.train_examples_per_s, "train_seconds": result.train_seconds})
                example = [text for text, _ in val_rows[:2]]
                import pandas as pd

                input_example = pd.DataFrame({"text": example})
                signature = infer_signature(input_example, [labels[0]] * len(example))
                registered = (
                    tracking.registered_model_name(task, condition, backbone)
                    if params.tracking.register_models else None
                )
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=_PYFUNC_CODE,
                    artifacts={"model_dir": str(staging)},
                    signature=signature,
                    input_example=input_example,
                    registered_model_name=registered,
                )
                if registered and info.registered_model_version is not None:
                    client = mlflow.MlflowClient()
                    for key, value in tags.items():
                        client.set_model_version_tag(registered, str(info.registered_model_version), key, value)
                manifest = {
                    "task": task, "condition": condition, "backbone": backbone, "backbone_location": location,
                    "labels": labels, "dataset": str(data_path), "dataset_md5": dataset_md5,
                    "n_train": len(train_rows), "n_val": len(val_rows), "best_epoch": result.best_epoch,
                    "best_val": result.best_val, "history": result.history,
                    "train_seconds": round(result.train_seconds, 2),
                    "train_examples_per_s": round(result.train_examples_per_s, 2),
                    "mlflow_run_id": run.info.run_id, "registered_model": registered,
                    "registered_version": info.registered_model_version,
                    "wall_seconds": round(time.perf_counter() - started, 2),
                }
                write_json(staging / "training.json", manifest)
                # Swap the finished model in only now, so a failed run never leaves a half model directory.
                if out_dir.exists():
                    shutil.rmtree(out_dir)
                out_dir.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(staging), out_dir)
    return manifest
