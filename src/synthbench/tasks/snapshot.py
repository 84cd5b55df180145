"""The task spec as prepare saw it, saved beside the task's real data (``data/real/<task>/task.json``).

Every later stage of a task reads its spec from this snapshot, and ``dvc.yaml`` declares it as their dep:
editing one task's prompt changes that task's snapshot only, so ``dvc repro`` re-runs that task's generation,
training and evaluation, and nothing of the other tasks.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from synthbench.errors import DataError
from synthbench.schema import first_error
from synthbench.tasks.spec import TaskSpec


def write_task_snapshot(spec: TaskSpec, path: str | os.PathLike[str]) -> None:
    """Atomically write ``spec`` as indented JSON."""
    from synthbench.data.io import write_text  # data sits above tasks in the layers; the write is its job

    write_text(path, spec.model_dump_json(indent=2) + "\n")


def read_task_snapshot(path: str | os.PathLike[str]) -> TaskSpec:
    """The TaskSpec saved by prepare; a missing or old snapshot is a DataError saying to re-run prepare."""
    source = Path(path)
    if not source.exists():
        raise DataError(f"{source}: not found; run the task's prepare stage first (dvc repro)")
    try:
        return TaskSpec.model_validate_json(source.read_bytes())
    except ValidationError as exc:
        raise DataError(
            f"{source}: not a task snapshot ({first_error(exc)}); re-run prepare (dvc repro)"
        ) from None
