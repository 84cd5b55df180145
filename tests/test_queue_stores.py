"""Fast checks of what makes a sweep lose nothing: where the journal and the tracking store resolve (and the
refusal inside a DVC experiment copy), each worker's share of the cores, run provenance tags, and
``synthbench cache merge`` of per-machine journals."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.conftest import REPO_ROOT

from synthbench import stores, sweep
from synthbench.config import load_params
from synthbench.errors import ConfigError, DataError
from synthbench.generation.batch_store import BatchStore
from synthbench.generation.journal import Completion, Journal
from synthbench.generation.journal_merge import merge_journals


@pytest.fixture
def exp_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory shaped like a DVC queued experiment's copy, with the repo's params.yaml."""
    where = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    where.mkdir(parents=True)
    (where / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    monkeypatch.chdir(where)
    for name in ("MLFLOW_TRACKING_URI", "SYNTHBENCH_JOURNAL", "SYNTHBENCH_WORKERS", "DVC_ROOT"):
        monkeypatch.delenv(name, raising=False)
    return where


def test_relative_journal_in_an_experiment_copy_is_refused_naming_the_variable(exp_copy: Path) -> None:
    assert stores.experiment_copy(exp_copy) and not stores.experiment_copy(exp_copy.parents[3])
    with pytest.raises(ConfigError, match=r"set SYNTHBENCH_JOURNAL=/abs/path/journal.sqlite") as caught:
        stores.journal_path(".synthbench/journal.sqlite")
    assert "\n" not in str(caught.value)


def test_relative_sqlite_tracking_uri_in_an_experiment_copy_is_refused(exp_copy: Path) -> None:
    params = load_params("params.yaml")
    with pytest.raises(ConfigError, match=r"set MLFLOW_TRACKING_URI=sqlite:////abs/path/mlflow.db"):
        _ = params.tracking_uri


def test_refusal_names_the_workspace_file_dvc_runs_the_experiment_for(
    exp_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = exp_copy.parents[3]
    monkeypatch.setenv("DVC_ROOT", str(workspace))  # DVC sets it to the parent repo in a queued experiment
    with pytest.raises(ConfigError, match=f"SYNTHBENCH_JOURNAL={workspace}/.synthbench/journal.sqlite "):
        stores.journal_path(".synthbench/journal.sqlite")
    with pytest.raises(ConfigError, match=f"MLFLOW_TRACKING_URI=sqlite:///{workspace}/mlflow.db "):
        stores.tracking_uri("sqlite:///mlflow.db")


def test_env_vars_point_every_copy_at_one_store(exp_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = exp_copy.parents[3] / ".synthbench" / "journal.sqlite"
    monkeypatch.setenv("SYNTHBENCH_JOURNAL", str(shared))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{exp_copy.parents[3] / 'mlflow.db'}")
    assert stores.journal_path(".synthbench/journal.sqlite") == shared
    assert load_params("params.yaml").tracking_uri == f"sqlite:///{exp_copy.parents[3] / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")  # a server: nothing to resolve
    assert load_params("params.yaml").tracking_uri == "http://127.0.0.1:5000"


def test_workspace_keeps_relative_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert (
        stores.journal_path(".synthbench/journal.sqlite", tmp_path) == tmp_path / ".synthbench/journal.sqlite"
    )
    assert stores.tracking_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_cli_refusal_is_one_line_with_config_exit_code(exp_copy: Path, cli) -> None:
    done = cli("cache", "stats", cwd=exp_copy, env={"SYNTHBENCH_JOURNAL": ""})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "SYNTHBENCH_JOURNAL" in done.stderr


@pytest.mark.parametrize(
    ("workers", "cores", "threads"), [(None, 2, 2), ("2", 2, 1), ("2", 16, 8), ("4", 2, 1)]
)
def test_each_queue_worker_takes_its_share_of_the_cores(
    workers: str | None, cores: int, threads: int
) -> None:
    from synthbench.threads import thread_budget

    env = {} if workers is None else {"SYNTHBENCH_WORKERS": workers}
    assert thread_budget(None, cores=cores, env=env) == threads


def test_runs_are_tagged_with_the_experiment_name_and_git_sha(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"],
        cwd=tmp_path,
        check=True,
    )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setenv("DVC_EXP_NAME", "sweep-lr-3")
    assert sweep.provenance_tags(tmp_path) == {sweep.TAG_DVC_EXP: "sweep-lr-3", sweep.TAG_GIT_SHA: head}
    monkeypatch.delenv("DVC_EXP_NAME")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "b" * 40)
    assert sweep.provenance_tags(tmp_path / "nowhere") == {sweep.TAG_GIT_SHA: "b" * 40}


# --- cache merge -------------------------------------------------------------------------------------------


def _journal(path: Path, answers: dict[str, str], task: str = "t") -> Path:
    with Journal(path) as journal:
        journal.record_many(
            (
                key,
                Completion(text, 10, 5, "stop", "m", 0.1),
                {"task": task, "mode": "zero_shot", "model": "m"},
            )
            for key, text in answers.items()
        )
        BatchStore(journal).save(
            f"batch-{path.stem}",
            keyset=f"ks-{path.stem}",
            input_file_id="file-1",
            status="completed",
            requests_meta={next(iter(answers)): {"task": task}},
        )
    return path


def _rows(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, text FROM completions").fetchall())


def test_merge_keeps_every_answer_once_and_ours_on_a_shared_key(tmp_path: Path) -> None:
    ours = _journal(tmp_path / "a.sqlite", {"k1": "one", "k2": "two", "k3": "three"})
    theirs = _journal(tmp_path / "b.sqlite", {"k3": "THREE again", "k4": "four", "k5": "five"})
    third = _journal(tmp_path / "c.sqlite", {"k5": "five", "k6": "six"})
    reports = merge_journals(ours, [theirs, third])
    assert [(r.answers, r.added, r.already_present, r.differing, r.batch_jobs_added) for r in reports] == [
        (3, 2, 1, 1, 1),
        (2, 1, 1, 0, 1),
    ]
    assert _rows(ours) == {"k1": "one", "k2": "two", "k3": "three", "k4": "four", "k5": "five", "k6": "six"}
    with Journal(ours) as journal:
        assert {job.id for job in BatchStore(journal).jobs()} == {"batch-a", "batch-b", "batch-c"}
        assert journal.meta("k4") == {"task": "t", "mode": "zero_shot", "model": "m"}
    again = merge_journals(ours, [theirs, third])  # idempotent: nothing new the second time
    assert [r.added for r in again] == [0, 0] and len(_rows(ours)) == 6


def test_merge_into_a_new_file_unions_journals(tmp_path: Path) -> None:
    a = _journal(tmp_path / "a.sqlite", {"k1": "one", "k2": "two"})
    b = _journal(tmp_path / "b.sqlite", {"k2": "two", "k3": "three"})
    merge_journals(tmp_path / "team" / "all.sqlite", [a, b])
    assert _rows(tmp_path / "team" / "all.sqlite") == {"k1": "one", "k2": "two", "k3": "three"}


def test_merge_refuses_a_non_journal_and_itself(tmp_path: Path) -> None:
    ours = _journal(tmp_path / "a.sqlite", {"k1": "one"})
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE x (y)")
    with pytest.raises(DataError, match="has no 'completions' table"):
        merge_journals(ours, [other])
    with pytest.raises(ConfigError, match="is the destination itself"):
        merge_journals(ours, [ours])
    with pytest.raises(DataError, match="no such file"):
        merge_journals(ours, [tmp_path / "missing.sqlite"])
    assert _rows(ours) == {"k1": "one"}


def test_cache_merge_cli_merges_into_the_projects_journal(tmp_path: Path, cli) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _journal(tmp_path / ".synthbench" / "journal.sqlite", {"k1": "one"})
    other = _journal(tmp_path / "machine-b.sqlite", {"k1": "one", "k2": "two"})
    done = cli("cache", "merge", str(other), cwd=tmp_path, env={"SYNTHBENCH_JOURNAL": ""})
    assert done.returncode == 0, done.stderr
    assert "2 answers, 1 new, 1 already here (0 with another text" in done.stdout
    assert _rows(tmp_path / ".synthbench" / "journal.sqlite") == {"k1": "one", "k2": "two"}
