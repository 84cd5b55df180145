"""Error hierarchy. Stages raise these; only the CLI turns them into one-line messages and exit codes."""

from __future__ import annotations


class SynthbenchError(Exception):
    """Base class: the message is one line that names the file/key and the fix. Each subclass states its exit
    code in its class line (``class ConfigError(SynthbenchError, exit_code=2)``)."""

    exit_code = 1

    def __init_subclass__(cls, exit_code: int | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code


class ConfigError(SynthbenchError, exit_code=2):
    """params.yaml, a task spec or a CLI option is wrong."""


class DataError(SynthbenchError, exit_code=3):
    """A data file or source is missing, malformed or inconsistent with its task."""


class EndpointError(SynthbenchError, exit_code=4):
    """An LLM endpoint is unreachable, refuses us, or answers in a way we cannot use."""


class BudgetExceeded(SynthbenchError, exit_code=5):
    """Generation stopped before exceeding its cost budget; the journal keeps the work done so far."""


class TrainingError(SynthbenchError, exit_code=6):
    """Fine-tuning cannot run as configured (backbone, labels, split, memory)."""


class JournalError(SynthbenchError, exit_code=7):
    """The answer journal cannot be opened or read (corrupt, truncated, locked, unwritable)."""


class Interrupted(SynthbenchError, exit_code=130):
    """SIGINT or SIGTERM: the answers that arrived are journaled; ``exit_code`` is 128 + the signal."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ShortLabels(SynthbenchError, exit_code=8):
    """A label fell short of ``generate.per_label`` (and ``generate.allow_short`` is off): nothing is written."""


class BatchPending(SynthbenchError):
    """Batch mode with ``generate.endpoint.batch_wait: false``: the batch is submitted (its id journaled) but not
    done yet; a later re-run resumes it without submitting anything again."""

    exit_code = 9


class MostlyRejected(ShortLabels):
    """The first answers of a stage were nearly all rejected: stopped early instead of spending the whole
    attempt budget on a prompt or filter setting that cannot work (exit code as for short labels)."""


def translate_library_error(exc: BaseException) -> SynthbenchError:
    """A library's exception that reached the CLI, as one of ours: named by its file when it has one. The
    stages convert what they can at the edge; this is the net under them, so no traceback ever reaches a user."""
    kind = type(exc).__name__
    module = type(exc).__module__.split(".")[0]
    text = " ".join(str(exc).split())[:300] or kind
    filename = getattr(exc, "filename", None)
    if module == "sqlite3":
        return JournalError(
            f"SQLite: {text}; run `synthbench cache check --salvage` if the journal is damaged"
        )
    if module == "yaml":
        return ConfigError(f"YAML: {text.splitlines()[0] if text else kind}; fix the file it names")
    if module in ("mlflow", "sqlalchemy", "alembic"):
        return ConfigError(
            f"MLflow store: {text}; check tracking.uri / MLFLOW_TRACKING_URI (a corrupt mlflow.db: move it away)"
        )
    if module in ("pyarrow", "pandas") or kind in ("ParserError", "ArrowInvalid", "EmptyDataError"):
        return DataError(f"data file could not be read ({kind}: {text}); fix the file or the task's source")
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"a file is not UTF-8 text ({text}); save it as UTF-8")
    if isinstance(exc, OSError) and filename is not None:
        return DataError(f"{filename}: {exc.strerror or kind}; check the path and its permissions")
    if isinstance(exc, OSError) and module in ("huggingface_hub", "transformers", "requests", "builtins"):
        return TrainingError(f"model or tokenizer could not be loaded ({text}); check the backbone name")
    return SynthbenchError(
        f"internal error ({kind}: {text}); set SYNTHBENCH_DEBUG=1 for the traceback and report it"
    )
