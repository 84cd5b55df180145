"""What a stage knows about the sweep it runs in: its share of the CPU cores, and which experiment and commit
its MLflow runs belong to.

Threads. Torch and llama.cpp each default to every core they can see. Two queue workers that both do so run
2 × cores threads on the cores: each slows down more than it gains (cache thrash, context switches), and a
sweep at ``-j 2`` ends up slower than at ``-j 1``. DVC does not tell a stage how many workers run beside it,
so the sweep command says it: ``SYNTHBENCH_WORKERS=2 dvc queue start -j 2`` (the README's walkthrough). Each
stage then takes its share of the cores this process may use (its affinity mask, which containers and
``taskset`` narrow), never less than one.

Provenance. DVC exports ``DVC_EXP_NAME`` to every stage of a ``dvc exp run`` (queued or not); with the git SHA
of the checkout, it is tagged on every run so a sweep's runs can be told apart in one shared store.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

WORKERS_ENV = "SYNTHBENCH_WORKERS"
TAG_DVC_EXP = "synthbench.dvc_exp_name"
TAG_GIT_SHA = "synthbench.git_sha"


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def concurrent_workers() -> int:
    """``$SYNTHBENCH_WORKERS`` (a positive integer), else 1; anything else counts as 1."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def threads_per_worker(cores: int | None = None) -> int:
    """This stage's share of ``cores`` (default: ``available_cores()``): cores // workers, at least 1."""
    total = available_cores() if cores is None else cores
    return max(1, total // concurrent_workers())


def provenance_tags(cwd: Path | None = None) -> dict[str, str]:
    """``{TAG_DVC_EXP: $DVC_EXP_NAME, TAG_GIT_SHA: HEAD of cwd}``; a value that is not known is left out. An
    experiment copy checks out its baseline commit; where git cannot tell, DVC's ``DVC_EXP_BASELINE_REV``."""
    tags: dict[str, str] = {}
    if os.environ.get("DVC_EXP_NAME"):
        tags[TAG_DVC_EXP] = os.environ["DVC_EXP_NAME"]
    sha = _git_head(cwd) or os.environ.get("DVC_EXP_BASELINE_REV")
    if sha:
        tags[TAG_GIT_SHA] = sha
    return tags


def _git_head(cwd: Path | None) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git on the machine: the tag is simply absent
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and len(sha) == 40 else None
