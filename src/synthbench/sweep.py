"""What a stage knows about the sweep it runs in: which experiment and commit its MLflow runs belong to. (Its
share of the CPU cores, ``SYNTHBENCH_WORKERS``, is :mod:`synthbench.threads`'.)

Provenance. DVC exports ``DVC_EXP_NAME`` to every stage of a ``dvc exp run`` (queued or not); with the git SHA
of the checkout, it is tagged on every run so a sweep's runs can be told apart in one shared store.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

TAG_DVC_EXP = "synthbench.dvc_exp_name"
TAG_GIT_SHA = "synthbench.git_sha"


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
