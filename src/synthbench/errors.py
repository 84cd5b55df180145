"""Error hierarchy. Stages raise these; only the CLI turns them into one-line messages and exit codes."""

from __future__ import annotations


class SynthbenchError(Exception):
    """Base class: the message is one line that names the file/key and the fix."""

    exit_code = 1


class ConfigError(SynthbenchError):
    """params.yaml, a task spec or a CLI option is wrong."""

    exit_code = 2


class DataError(SynthbenchError):
    """A data file or source is missing, malformed or inconsistent with its task."""

    exit_code = 3


class EndpointError(SynthbenchError):
    """An LLM endpoint is unreachable, refuses us, or answers in a way we cannot use."""

    exit_code = 4


class BudgetExceeded(SynthbenchError):
    """Generation stopped before exceeding its cost budget; the journal keeps the work done so far."""

    exit_code = 5


class TrainingError(SynthbenchError):
    """Fine-tuning cannot run as configured (backbone, labels, split, memory)."""

    exit_code = 6
