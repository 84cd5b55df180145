"""Typed records of the files stages hand each other: what generate, train and evaluate wrote, as pydantic
models written with ``model_dump_json`` and read with ``model_validate_json``. Unknown keys are an error
(:class:`synthbench.schema.StrictModel`), so a file written by an older synthbench (or hand-edited) fails to
load with one line naming it and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import Field, ValidationError

from synthbench.data.io import write_text
from synthbench.errors import DataError
from synthbench.schema import StrictModel, first_error

R = TypeVar("R", bound="Record")


class Record(StrictModel):
    """A stage's output file. ``rerun`` names the stage that writes it, for the error message."""

    rerun: ClassVar[str] = "the stage that writes it"

    @classmethod
    def read(cls: type[R], path: str | os.PathLike[str]) -> R:
        """Load ``path``; a missing, unreadable or old-format file is a DataError naming it and the fix."""
        source = Path(path)
        stage = cls.rerun
        if not source.exists():
            raise DataError(f"{source}: not found; run {stage} first (dvc repro)")
        try:
            return cls.model_validate_json(source.read_bytes())
        except ValidationError as exc:
            raise DataError(
                f"{source}: not a {cls.__name__} this synthbench writes ({first_error(exc)}); re-run {stage} "
                f"(dvc repro -f -s <stage>)"
            ) from None

    def write(self, path: str | os.PathLike[str]) -> None:
        """Atomically write this record as indented JSON."""
        write_text(path, self.model_dump_json(indent=2) + "\n")


# --- generate ----------------------------------------------------------------------------------------------------
class GenerationSummary(Record):
    """``data/synthetic/<task>/<mode>.summary.json``: what one generate stage did."""

    rerun: ClassVar[str] = "generate"
    task: str
    mode: str
    endpoint: str = Field(description="The endpoint with credentials and query string removed.")
    model: str = Field(description="The model identity used in journal keys.")
    prompt_id: str
    sampling: dict[str, Any]
    seed: int
    per_label_target: int
    accepted_per_label: dict[str, int]
    attempts_per_label: dict[str, int]
    short_labels: list[str]
    rejected: dict[str, int]
    rejected_per_label: dict[str, dict[str, int]]
    n_rows: int
    client: dict[str, Any] = Field(description="ChatClient statistics: calls, cached, tokens, cost (USD).")
    wall_seconds: float
    endpoint_mode: str = Field(default="online", description="online (chat requests) or batch (Batch API).")
    price_factor: float = Field(
        default=1.0, description="Price paid per token as a share of the synchronous price (0.5: Batch API)."
    )
    label_consistency: dict[str, float | int] | None = Field(
        default=None,
        description="The label-consistency oracle, when on: threshold, folds, its out-of-fold accuracy on the "
        "real train rows (oracle_cv_accuracy), n_real; its rejections are counted as label_inconsistent.",
    )
    attribute_proposal: dict[str, Any] | None = Field(
        default=None,
        description="Attributed mode with generate.propose_attributes: the model's proposal (journal key, model, "
        "attributes or null when unusable, a note); null when not asked.",
    )
    response_format: dict[str, Any] | None = Field(
        default=None, description="Structured output: the response_format every request carried; null: none."
    )


# --- train -------------------------------------------------------------------------------------------------------
class SeedRun(StrictModel):
    """One seed's fine-tuning inside a model directory."""

    seed: int
    model_dir: str = Field(description="Folder of this seed's model, relative to the model directory.")
    mlflow_run_id: str | None
    best_epoch: int
    best_val: dict[str, float]
    history: list[dict[str, float]]
    train_seconds: float
    train_examples_per_s: float
    precision: str
    device: str


class TrainingManifest(Record):
    """``models/<task>/<condition>/<backbone>/training.json``: what one training stage did."""

    rerun: ClassVar[str] = "the train stage"
    task: str
    condition: str
    backbone: str
    backbone_location: str
    labels: list[str]
    dataset: str = Field(description="The first data file the condition reads.")
    dataset_md5: str = Field(description="DVC-style md5 over every data file the condition reads.")
    data: dict[str, Any] = Field(description="Sources (path, md5, rows) and rows removed before training.")
    n_train: int
    n_val: int
    seeds: list[SeedRun] = Field(min_length=1)
    selected_seed: int
    selected_model_dir: str
    best_epoch: int
    best_val: dict[str, float]
    val_summary: dict[str, float]
    train_seconds: float
    train_examples_per_s: float
    mlflow_run_id: str
    mlflow_experiment_id: str
    registered_model: str | None
    registered_version: str | None
    registered_run_id: str
    wall_seconds: float

    @property
    def selected(self) -> SeedRun:
        return next(run for run in self.seeds if run.seed == self.selected_seed)

    @property
    def rows_trained(self) -> int:
        """Rows the condition trained on: training plus validation split."""
        return self.n_train + self.n_val


# --- evaluate ----------------------------------------------------------------------------------------------------
class Interval(StrictModel):
    low: float
    high: float


class SeedScore(StrictModel):
    seed: int
    macro_f1: float
    accuracy: float
    ece: float


class EvaluationMetrics(Record):
    """``results/<task>/<condition>/<backbone>/metrics.json`` (DVC metrics). ``macro_f1``/``accuracy``/``ece`` are
    means over the training seeds, in [0, 1]; ``*_ci95`` the Student-t 95% interval of the mean (null with one
    seed); ``selected`` the deployed seed's scores; ``per_class`` its precision/recall/F1/support per label."""

    rerun: ClassVar[str] = "evaluate"
    task: str
    condition: str
    backbone: str
    macro_f1: float
    accuracy: float
    ece: float
    n_test: int
    n_seeds: int
    macro_f1_mean: float
    macro_f1_std: float | None
    macro_f1_ci95: Interval | None
    accuracy_mean: float
    accuracy_std: float | None
    accuracy_ci95: Interval | None
    ece_mean: float
    ece_std: float | None
    ece_ci95: Interval | None
    seeds: list[SeedScore] = Field(min_length=1)
    selected: SeedScore
    per_class: dict[str, dict[str, int | float]]  # support stays an int
