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


def registered_model_name(task: str, condition: str, backbone: str) -> str:
    return f"synthbench-{task}-{condition}-{backbone}".replace("+", "_plus_")


def run_name(task: str, condition: str, backbone: str) -> str:
    return f"{task}/{condition}/{backbone}"


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
