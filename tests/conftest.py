"""Shared fixtures. Tests run offline: the hub and api.openai.com do not exist here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# dvc.yaml calls `synthbench`, and tests call `dvc`: both live beside this interpreter, activated or not.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def synthbench_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI as a user would (a real subprocess, real exit code and stderr)."""
    exe = shutil.which("synthbench") or str(Path(sys.executable).with_name("synthbench"))
    return subprocess.run(
        [exe, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def cli():
    return synthbench_cli


@pytest.fixture(scope="module")
def module_tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for one test module's shared study, removed when the module ends unless one of its tests failed.

    A tiny study is ~1.5 GB (trained weights in ``models/``, the DVC cache and MLflow's artifacts): kept to the
    end of the session, ten of them filled the CI disk."""
    failed_before = request.session.testsfailed
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


_IMMUTABLE_SUFFIXES = {".safetensors", ".bin", ".pt"}


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link what nothing rewrites in place (weights, which training swaps in as new files, and DVC cache
    objects); copy the rest (SQLite stores, YAML, JSON are rewritten where they lie)."""
    path = Path(source)
    if path.suffix in _IMMUTABLE_SUFFIXES or (".dvc" in path.parts and "cache" in path.parts):
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another filesystem: copy
    shutil.copy2(source, target)


def copy_project(source: Path, target: Path) -> Path:
    """A copy of a study folder in which each test can run stages, at the cost of its small files only."""
    shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    return target
