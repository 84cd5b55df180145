"""Every MLflow call of synthbench, in one place: the store (params ``tracking`` or ``MLFLOW_TRACKING_URI``),
experiment, run and registered-model names and tags, the training run (parent + one nested run per seed, the
deployable pyfunc model and its registration), the evaluation's test metrics, and the ``champion`` alias.
Nothing secret is ever passed through here."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthbench import sweep
from synthbench.config import TrackingParams
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

# MLflow "models from code": the file is logged with the model and run at load time (no pickles).
_PYFUNC_CODE = str(importlib.util.find_spec("synthbench.pyfunc_model").origin)  # type: ignore[union-attr]
# What the pyfunc needs at load time; listing it skips MLflow's slow requirement inference (it would load the
# model in a subprocess just to see what it imports).
_PIP_REQUIREMENTS = ("mlflow", "torch", "transformers", "pandas", "numpy", "synthbench")


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


def tracking_uri(tracking: TrackingParams) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else params ``tracking.uri``."""
    return tracking.resolved_uri


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


def configure(tracking: TrackingParams) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    user_uri = os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_uri(tracking)
    mlflow.set_tracking_uri(uri)
    # set_tracking_uri also exports MLFLOW_TRACKING_URI; left there it would override every later
    # tracking.uri in this process. Only the user's own setting may do that.
    if user_uri is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_uri
    artifacts = local_artifact_root(uri)
    if artifacts is not None and mlflow.get_experiment_by_name(tracking.experiment) is None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # created meanwhile by another process: use that one
            mlflow.create_experiment(tracking.experiment, artifact_location=artifacts.as_uri())
    experiment = mlflow.set_experiment(tracking.experiment)
    return str(experiment.experiment_id)


def local_artifact_root(uri: str) -> Path | None:
    """``<folder of the SQLite file>/mlruns`` for a ``sqlite:///`` store, else None (a server or file store
    keeps its own artifact root). MLflow's default for a SQLite store is ``./mlruns`` of whatever directory the
    process runs in, which scatters one store's models over every working directory it was used from."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    database = Path(uri[len(prefix) :])
    return (database.parent / "mlruns").resolve()


def require_run(client: Any, run_id: str, tracking: TrackingParams, what: str) -> None:
    """ConfigError unless ``run_id`` exists in the configured store: a run logged under one tracking URI is
    not in another (MLFLOW_TRACKING_URI is not a DVC param, so switching it does not re-run training)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"{what}: MLflow run {run_id} is not in the tracking store {tracking_uri(tracking)}; use the "
            f"MLFLOW_TRACKING_URI it was trained with, or re-train there (dvc repro -f -s <train stage>)"
        ) from None


# --- training ------------------------------------------------------------------------------------------------
@dataclass
class DatasetInput:
    """One training source as an MLflow dataset input: its rows, its path, DVC's md5 as digest."""

    name: str
    path: Path
    md5: str
    rows: Sequence[tuple[str, str]]


def log_shared_input(dataset: Any, context: str, tags: Mapping[str, str], attempts: int = 5) -> None:
    """``mlflow.log_input`` that survives a concurrent run logging the same dataset.

    MLflow's SQL store checks whether (experiment, name, digest) exists and then inserts it, in two steps: two
    runs that log the same new dataset at the same moment (two queued DVC experiments training on the same
    rows) both see nothing, and the second insert fails on the unique constraint, failing a whole stage. A retry
    finds the row the other run wrote and links to it; any other error is raised at once.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context, tags=dict(tags))
            return
        except MlflowException as error:
            message = str(error)
            lost_race = "UNIQUE constraint failed" in message or "duplicate key value" in message
            if not lost_race or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


@dataclass
class TrainingRun:
    """The MLflow parent run of one training stage, with a nested run per seed (see :func:`training_run`)."""

    task: str
    condition: str
    backbone: str
    tags: dict[str, str]
    run_id: str
    experiment_id: str
    datasets: list[DatasetInput] = field(default_factory=list)
    seed_run_ids: dict[int, str] = field(default_factory=dict)

    def log_inputs(self, params: Mapping[str, Any], datasets: list[DatasetInput]) -> None:
        import mlflow

        self.datasets = datasets
        mlflow.log_params(dict(params))
        self._log_datasets()

    def _log_datasets(self) -> None:
        import mlflow
        import pandas as pd

        for source in self.datasets:
            frame = pd.DataFrame(
                {"text": [t for t, _ in source.rows], "label": [lab for _, lab in source.rows]}
            )
            dataset = mlflow.data.from_pandas(
                frame,
                source=str(source.path.resolve()),
                targets="label",
                name=f"{self.task}/{source.name}",
                digest=source.md5,
            )
            log_shared_input(dataset, context="training", tags={TAG_CONDITION: self.condition})

    @contextlib.contextmanager
    def seed_run(
        self, seed: int, params: Mapping[str, Any]
    ) -> Iterator[Callable[[int, dict[str, float]], None]]:
        """A nested run for one seed; yields ``log_epoch(epoch, metrics)`` for the per-epoch curves."""
        import mlflow

        name = seed_run_name(self.task, self.condition, self.backbone, seed)
        with mlflow.start_run(run_name=name, tags={**self.tags, TAG_SEED: str(seed)}, nested=True) as child:
            self.seed_run_ids[seed] = child.info.run_id
            mlflow.log_params({"seed": seed, **params})
            self._log_datasets()

            def log_epoch(epoch: int, row: dict[str, float]) -> None:
                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)

            yield log_epoch

    @staticmethod
    def log_metrics(metrics: Mapping[str, float]) -> None:
        """Metrics of the active run (the seed's run inside :meth:`seed_run`, else the parent run)."""
        import mlflow

        mlflow.log_metrics(dict(metrics))

    def log_model(
        self, seed: int, model_dir: Path, input_example: list[str], label: str, registered: str | None
    ) -> str | None:
        """Log ``model_dir`` as a pyfunc (raw text in, label out) in ``seed``'s nested run, register it as
        ``registered`` (if given) with this run's tags; returns the registered version."""
        import mlflow
        from mlflow.models import infer_signature

        with mlflow.start_run(run_id=self.seed_run_ids[seed], nested=True):
            # A column of strings: the model takes a list of texts, a Series or a one-column DataFrame.
            signature = infer_signature(input_example, [label] * len(input_example))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=_PYFUNC_CODE,
                artifacts={"model_dir": str(model_dir)},
                signature=signature,
                input_example=input_example,
                pip_requirements=list(_PIP_REQUIREMENTS),
                registered_model_name=registered,
            )
            mlflow.set_tag(TAG_SELECTED, "true")
        if not registered or info.registered_model_version is None:
            return None
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        for key, value in {**self.tags, TAG_SEED: str(seed), TAG_PARENT_RUN: self.run_id}.items():
            client.set_model_version_tag(registered, version, key, value)
        return version

    @staticmethod
    def log_manifest(manifest: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_dict(dict(manifest), "training.json")


@contextlib.contextmanager
def training_run(
    tracking: TrackingParams, task: str, condition: str, backbone: str, dataset_md5: str
) -> Iterator[TrainingRun]:
    """Open the parent run of one (task, condition, backbone) training in the configured store."""
    import mlflow

    with quiet_mlflow():
        configure(tracking)
        tags = run_tags(task, condition, backbone, dataset_md5, stage="train")
        with mlflow.start_run(run_name=run_name(task, condition, backbone), tags=tags) as parent:
            yield TrainingRun(task, condition, backbone, tags, parent.info.run_id, parent.info.experiment_id)


# --- evaluation ----------------------------------------------------------------------------------------------
def open_training_run(tracking: TrackingParams, run_id: str, what: str) -> Any:
    """An MLflow client on the configured store, after checking that the training's run is in it."""
    import mlflow

    with quiet_mlflow():
        configure(tracking)
        client = mlflow.MlflowClient()
        require_run(client, run_id, tracking, what)
    return client


def log_evaluation(
    client: Any,
    parent_id: str,
    seed_metrics: Mapping[str, Mapping[str, float]],
    summary: Mapping[str, float],
    artifacts: Mapping[str, Any],
    files: Sequence[Path],
) -> None:
    """Test metrics: each seed's to its nested run (``seed_metrics``: run id → metrics), the mean/std/interval
    to the parent run, ``artifacts`` (name → dict) as JSON and ``files`` under ``evaluation/``."""
    with quiet_mlflow():
        for run_id, metrics in seed_metrics.items():
            if run_id != parent_id:
                for key, value in metrics.items():
                    client.log_metric(run_id, key, value)
        for key, value in summary.items():
            client.log_metric(parent_id, key, value)
        for name, payload in artifacts.items():
            client.log_dict(parent_id, payload, f"evaluation/{name}")
        for path in files:
            client.log_artifact(parent_id, str(path), "evaluation")


# --- pilot ---------------------------------------------------------------------------------------------------
PILOT_METRICS = {  # report key path → metric name suffix; fractions unless named otherwise
    ("prediction", "gap"): "predicted_gap",
    ("prediction", "gap_low"): "predicted_gap_low",
    ("prediction", "gap_high"): "predicted_gap_high",
    ("fidelity", "overall"): "label_fidelity",
    ("distinguishability_auc",): "distinguishability_auc",
    ("diversity_ratio",): "diversity_ratio",
    ("closeness",): "closeness",
    ("cost", "full_usd_online"): "full_usd_online",
    ("cost", "full_usd_batch"): "full_usd_batch",
    ("cost", "full_requests"): "full_requests",
    ("cost", "pilot_requests"): "pilot_requests",
}


def log_pilot(tracking: TrackingParams, report: Mapping[str, Any], files: Sequence[Path]) -> str:
    """One run ``pilot-<task>`` (tags task, stage ``pilot``, each mode's verdict; a sweep's tags) with each
    mode's figures as ``<mode>.<metric>`` and the report files under ``pilot/``; returns its run id."""
    import mlflow

    task = str(report["task"])
    tags = {TAG_TASK: task, TAG_STAGE: "pilot", **sweep.provenance_tags()}
    tags.update(
        {f"synthbench.pilot.{mode}": str(entry["verdict"]) for mode, entry in report["modes"].items()}
    )
    with quiet_mlflow():
        configure(tracking)
        with mlflow.start_run(run_name=f"pilot-{task}", tags=tags) as run:
            mlflow.log_params(
                {
                    "pilot_rows_per_label": report["pilot_rows_per_label"],
                    "full_rows_per_label": report["full_rows_per_label"],
                    "modes": ",".join(report["modes"]),
                    "real_fit_rows": report["real_fit_rows"],
                    "real_validation_rows": report["real_validation_rows"],
                }
            )
            metrics = {}
            for mode, entry in report["modes"].items():
                for path, name in PILOT_METRICS.items():
                    value: Any = entry
                    for key in path:
                        value = value.get(key) if isinstance(value, Mapping) else None
                    if isinstance(value, int | float):
                        metrics[f"{mode}.{name}"] = float(value)
            mlflow.log_metrics(metrics)
            for path in files:
                mlflow.log_artifact(str(path), "pilot")
            return str(run.info.run_id)


# --- champion ------------------------------------------------------------------------------------------------
def champion_client(tracking: TrackingParams) -> Any:
    import mlflow

    with quiet_mlflow():
        configure(tracking)
        return mlflow.MlflowClient()


def set_champion(
    client: Any,
    tracking: TrackingParams,
    task: str,
    name: str,
    version: str,
    others: Sequence[str],
    what: str,
) -> str:
    """Point ``champion`` at ``name``/``version`` (dropping it from the task's ``others``) and at a copy of it
    in the task-level model ``synthbench-<task>`` (copied once per winner); returns the task-level version."""
    from mlflow.exceptions import MlflowException

    with quiet_mlflow():
        try:
            winner = client.get_model_version(name, version)
        except MlflowException:
            raise ConfigError(
                f"registered model {name} version {version} (from {what}) is not in the tracking store "
                f"{tracking_uri(tracking)}; use the MLFLOW_TRACKING_URI it was trained with, or re-train there"
            ) from None
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        for other in others:
            if other != name:
                with contextlib.suppress(MlflowException):  # never registered, or never had the alias
                    client.delete_registered_model_alias(other, CHAMPION_ALIAS)
        task_name, source = task_model_name(task), f"{name}/{version}"
        try:
            current = client.get_model_version_by_alias(task_name, CHAMPION_ALIAS)
        except MlflowException:
            current = None
        if current is not None and current.tags.get(TAG_SOURCE_MODEL) == source:
            return str(current.version)
        copied = client.copy_model_version(f"models:/{name}/{version}", task_name)
        for key, value in {**winner.tags, TAG_SOURCE_MODEL: source}.items():
            client.set_model_version_tag(task_name, copied.version, key, value)
        client.set_registered_model_alias(task_name, CHAMPION_ALIAS, copied.version)
        return str(copied.version)
