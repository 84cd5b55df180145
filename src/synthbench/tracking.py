"""MLflow naming and setup in one place: tracking URI (params or ``MLFLOW_TRACKING_URI``), experiment, run and
registered-model names, and tags. Nothing secret is ever passed through here."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

from synthbench.config import Params

TAG_TASK = "synthbench.task"
TAG_CONDITION = "synthbench.condition"
TAG_BACKBONE = "synthbench.backbone"
TAG_DATASET_MD5 = "synthbench.dataset_md5"
TAG_STAGE = "synthbench.stage"
TAG_SEED = "synthbench.seed"
TAG_SELECTED = "synthbench.selected"  # on the nested run whose model was logged and registered
TAG_PARENT_RUN = "synthbench.parent_run_id"
TAG_SOURCE_MODEL = "synthbench.source_model"  # on a task-level version: the "name/version" it was copied from
CHAMPION_ALIAS = "champion"


def registered_model_name(task: str, condition: str, backbone: str) -> str:
    return f"synthbench-{task}-{condition}-{backbone}".replace("+", "_plus_")


def task_model_name(task: str) -> str:
    """The registered model whose ``champion`` alias is the task's best model across conditions/backbones."""
    return f"synthbench-{task}"


def run_name(task: str, condition: str, backbone: str) -> str:
    return f"{task}/{condition}/{backbone}"


def seed_run_name(task: str, condition: str, backbone: str, seed: int) -> str:
    return f"{run_name(task, condition, backbone)}/seed={seed}"


def run_tags(task: str, condition: str, backbone: str, dataset_md5: str, stage: str) -> dict[str, str]:
    return {
        TAG_TASK: task,
        TAG_CONDITION: condition,
        TAG_BACKBONE: backbone,
        TAG_DATASET_MD5: dataset_md5,
        TAG_STAGE: stage,
    }


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow and alembic print migration chatter and deprecation warnings on every SQLite open; a stage's
    output should show the stage's progress instead."""
    loggers = [logging.getLogger(name) for name in ("alembic", "mlflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def configure(params: Params) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(params.tracking_uri)
    experiment = mlflow.set_experiment(params.tracking.experiment)
    return str(experiment.experiment_id)
