"""MLflow naming and setup in one place: tracking URI (params or ``MLFLOW_TRACKING_URI``), experiment, run and
registered-model names, and tags. Nothing secret is ever passed through here."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from synthbench import sweep
from synthbench.config import Params
from synthbench.errors import ConfigError

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
        **sweep.provenance_tags(),  # DVC_EXP_NAME and the git SHA: one store holds a whole sweep's runs
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
    user_uri = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(params.tracking_uri)
    # set_tracking_uri also exports MLFLOW_TRACKING_URI; left there it would override every later Params'
    # tracking.uri in this process (Params.tracking_uri reads it). Only the user's own setting may do that.
    if user_uri is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_uri
    artifacts = local_artifact_root(params.tracking_uri)
    if artifacts is not None and mlflow.get_experiment_by_name(params.tracking.experiment) is None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # created meanwhile by another process: use that one
            mlflow.create_experiment(params.tracking.experiment, artifact_location=artifacts.as_uri())
    experiment = mlflow.set_experiment(params.tracking.experiment)
    return str(experiment.experiment_id)


def local_artifact_root(tracking_uri: str) -> Path | None:
    """``<folder of the SQLite file>/mlruns`` for a ``sqlite:///`` store, else None (a server or file store
    keeps its own artifact root). MLflow's default for a SQLite store is ``./mlruns`` of whatever directory the
    process runs in, which scatters one store's models over every working directory it was used from."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    database = Path(tracking_uri[len(prefix):])
    return (database.parent / "mlruns").resolve()


def require_run(client: object, run_id: str, params: Params, what: str) -> None:
    """ConfigError unless ``run_id`` exists in the configured store: a run logged under one tracking URI is
    not in another (MLFLOW_TRACKING_URI is not a DVC param, so switching it does not re-run training)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)  # type: ignore[attr-defined]
    except MlflowException:
        raise ConfigError(
            f"{what}: MLflow run {run_id} is not in the tracking store {params.tracking_uri}; use the "
            f"MLFLOW_TRACKING_URI it was trained with, or re-train there (dvc repro -f -s <train stage>)"
        ) from None
