"""``dvc exp run --queue`` + ``dvc queue start -j 2`` on a tiny study, against the OpenAI test server (which
counts what it answers): first the hazard on the code before this fix (each queued experiment pays every answer
again and keeps its runs in a throw-away store), then the fix (one journal, one MLflow store, every answer paid
once, runs tagged with their experiment name and commit, Macro-F1 per experiment in ``dvc exp show``)."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import REPO_ROOT

from openai_server import ServerConfig, ServerHandle, serve
from stack import failed_logs, make_project, run_queue, sh

pytestmark = pytest.mark.slow
TASK = "tiny_sport"
BEFORE_FIX = "b8d169e"  # the last commit before queued sweeps resolved their stores (issue 11)
ZERO_SHOT_METRICS = f"results/{TASK}/zero_shot/minilm-l6/metrics.json"


def mlflow_runs(db: Path) -> list[dict[str, str]]:
    """Tags of every run in a SQLite MLflow store (read with sqlite3: no MLflow import, no migration)."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT run_uuid, key, value FROM tags").fetchall()
    runs: dict[str, dict[str, str]] = {}
    for run, key, value in rows:
        runs.setdefault(run, {})[key] = value
    return list(runs.values())


def journal_keys(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [key for (key,) in conn.execute("SELECT key FROM completions")]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    # 2 s per answer keeps both experiments' requests in flight at once: the case where both could pay.
    with serve(ServerConfig(latency_s=2.0), in_process=False) as handle:
        yield handle


@pytest.fixture(scope="module")
def workspace(module_tmp: Path, server: ServerHandle) -> Path:
    """The tiny study, reproduced in the workspace (relative stores: fine there) and committed."""
    repo = make_project(module_tmp / "repo", [TASK], server.base_url)
    sh("dvc", "repro", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline", cwd=repo)
    return repo


def test_queue_hazard_on_the_code_before_this_fix(server: ServerHandle, tmp_path: Path) -> None:
    """The whole tiny study as it was before the fix (that commit's src, dvc.yaml and params.yaml)."""
    archive = subprocess.run(
        ["git", "archive", BEFORE_FIX, "src", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.skip(
            f"commit {BEFORE_FIX} is not in this clone (shallow?): cannot run the code before the fix"
        )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path / "old", filter="data")
    old_code = {"PYTHONPATH": str(tmp_path / "old" / "src")}
    workspace = make_project(tmp_path / "repo", [TASK], server.base_url, source=tmp_path / "old")
    sh("dvc", "repro", cwd=workspace, env=old_code)
    sh("git", "add", "-A", cwd=workspace)
    sh("git", "commit", "-qm", "baseline", cwd=workspace)
    runs_before = len(mlflow_runs(workspace / "mlflow.db"))
    answered_before = server.stats()["answered"]
    journaled = journal_keys(workspace / ".synthbench" / "journal.sqlite")
    # Only a filter param changes: every request is one the workspace journal already holds.
    status = run_queue(
        workspace, {"old-a": ["generate.min_words=4"], "old-b": ["generate.min_words=5"]}, env=old_code
    )
    assert status == {"old-a": "Success", "old-b": "Success"}, failed_logs(workspace, status)
    per_generation = len(journaled)
    assert server.stats()["answered"] - answered_before == 2 * per_generation  # every answer paid twice more
    assert len(journal_keys(workspace / ".synthbench" / "journal.sqlite")) == per_generation
    assert len(mlflow_runs(workspace / "mlflow.db")) == runs_before  # they trained, registered… elsewhere


@pytest.fixture(scope="module")
def sweep(workspace: Path, server: ServerHandle) -> dict:
    """Two experiments that need the same NEW answers (temperature 0.5), run at -j 2 with the stores set."""
    answered_before = server.stats()["answered"]
    keys_before = set(journal_keys(workspace / ".synthbench" / "journal.sqlite"))
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}",
        "SYNTHBENCH_JOURNAL": str(workspace / ".synthbench" / "journal.sqlite"),
        "SYNTHBENCH_WORKERS": "2",
    }
    status = run_queue(
        workspace,
        {
            "new-a": ["generate.temperature=0.5", "train.learning_rate=3e-4"],
            "new-b": ["generate.temperature=0.5", "train.learning_rate=1e-3"],
        },
        env=env,
    )
    keys = journal_keys(workspace / ".synthbench" / "journal.sqlite")
    return {
        "status": status,
        "answered": server.stats()["answered"] - answered_before,
        "keys": keys,
        "new_keys": set(keys) - keys_before,
        "baseline": sh("git", "rev-parse", "HEAD", cwd=workspace).strip(),
    }


def test_queued_experiments_succeed_and_journal_every_answer_once(sweep: dict, workspace: Path) -> None:
    assert sweep["status"] == {"new-a": "Success", "new-b": "Success"}, failed_logs(
        workspace, sweep["status"]
    )
    assert len(sweep["keys"]) == len(set(sweep["keys"]))
    per_generation = json.loads((workspace / "data/synthetic" / TASK / "zero_shot.summary.json").read_text())[
        "client"
    ]["requested"]
    assert len(sweep["new_keys"]) == per_generation  # the new temperature's answers, in the workspace journal


def test_two_experiments_needing_the_same_new_answers_pay_once(sweep: dict) -> None:
    new_keys = len(sweep["new_keys"])
    assert sweep["answered"] == new_keys, (
        f"the server answered {sweep['answered']} requests for {new_keys} new keys"
    )


def test_every_run_lands_in_the_one_store_tagged_with_experiment_and_commit(
    sweep: dict, workspace: Path
) -> None:
    runs = mlflow_runs(workspace / "mlflow.db")
    by_exp: dict[str, list[dict[str, str]]] = {}
    for tags in runs:
        by_exp.setdefault(tags.get("synthbench.dvc_exp_name", ""), []).append(tags)
    for name in ("new-a", "new-b"):
        stages = Counter(t.get("synthbench.stage") for t in by_exp[name])
        # the temperature changed: the pilot re-ran (one run); learning_rate: train_real and train_synthetic
        # re-ran, a parent and a seed run each
        assert stages == {"train": 4, "pilot": 1}
        trained = [t for t in by_exp[name] if t.get("synthbench.stage") == "train"]
        assert sorted(t["synthbench.condition"] for t in trained) == [
            "real",
            "real",
            "zero_shot",
            "zero_shot",
        ]
        assert {t["synthbench.git_sha"] for t in by_exp[name]} == {sweep["baseline"]}
    assert "old-a" not in by_exp and "old-b" not in by_exp


def test_exp_show_lists_macro_f1_per_experiment(sweep: dict, workspace: Path) -> None:
    out = sh("dvc", "exp", "show", "--only-changed", "--keep", ".*:macro_f1$", "--csv", cwd=workspace)
    header, *rows = [line.split(",") for line in out.strip().splitlines()]
    column = header.index(f"{ZERO_SHOT_METRICS}:macro_f1")
    values = {row[0]: row[column] for row in rows if row[0]}
    assert {"new-a", "new-b"} <= set(values)
    assert all(0.0 <= float(values[name]) <= 1.0 for name in ("new-a", "new-b"))
