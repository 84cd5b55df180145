"""An honest DVC graph: every file and param a stage reads is declared, so `dvc status` never calls a stale result
up to date and `dvc repro` re-runs exactly what an edit affects.

One module-scoped study (real DVC in a temp git repo, the fake OpenAI server for generation, MiniLM, MLflow on
SQLite) with a built-in task (rotten_tomatoes, its real data from tiny local CSVs) and a custom task (toy). The
temp repo's own ``src/`` is on PYTHONPATH, so an edit of its built-in spec is what synthbench loads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from tests.conftest import REPO_ROOT, copy_project

from openai_server import serve

pytestmark = pytest.mark.slow
BUILTIN, CUSTOM = "rotten_tomatoes", "toy"
TOY_SPEC = {
    "name": CUSTOM,
    "description": "toy sentiment",
    "subjectivity": 2,
    "labels": [{"name": "pos", "description": "good"}, {"name": "neg", "description": "bad"}],
    "source": {"kind": "local", "files": {"train": "tasks/toy_train.csv", "test": "tasks/toy_test.csv"}},
    "prompt": {"context": "You write reviews.", "generation": "Write {label_instruction} about {style}."},
}
WORDS = [
    "warm",
    "sharp",
    "tender",
    "bright",
    "clever",
    "bold",
    "dull",
    "flat",
    "tired",
    "loud",
    "empty",
    "slow",
]


def csv(labels: tuple[str, str], n: int, offset: int = 0) -> str:
    rows = [f"a {WORDS[(i + offset) % 6]} film number {i + offset},{labels[0]}" for i in range(n)]
    rows += [f"a {WORDS[6 + (i + offset) % 6]} film number {i + offset},{labels[1]}" for i in range(n)]
    return "text,label\n" + "\n".join(rows) + "\n"


def sh(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def status(repo: Path, env: dict[str, str]) -> set[str]:
    """The stages `dvc status` calls changed."""
    done = subprocess.run(
        ["dvc", "status", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return set(json.loads(done.stdout or "{}"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    repo = tmp_path_factory.mktemp("graph")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO_ROOT / name, repo / name)
    shutil.copytree(
        REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    tasks = repo / "tasks"
    tasks.mkdir()
    (tasks / "toy.yaml").write_text(yaml.safe_dump(TOY_SPEC))
    (tasks / "toy_train.csv").write_text(csv(("pos", "neg"), 6))
    (tasks / "toy_test.csv").write_text(csv(("pos", "neg"), 3, offset=20))
    (tasks / "rt_train.csv").write_text(csv(("fresh", "rotten"), 6))
    (tasks / "rt_test.csv").write_text(csv(("fresh", "rotten"), 3, offset=20))
    with serve() as server:
        params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
        params.update(
            tasks=[BUILTIN, CUSTOM],
            modes=["zero_shot"],
            mixes=[],
            conditions=["real", "zero_shot"],
            custom_tasks={CUSTOM: "tasks/toy.yaml"},
            local_sources={BUILTIN: {"train": "tasks/rt_train.csv", "test": "tasks/rt_test.csv"}},
            task_files={"specs": "tasks", "data": "tasks"},
        )
        params["prepare"].update(train_per_label=6, test_per_label=3, min_chars=1)
        params["generate"].update(
            per_label=3,
            diversity_every=2,
            max_tokens=60,
            max_attempts_factor=3,
            min_words=2,
            near_duplicate_threshold=None,
        )
        params["generate"]["endpoint"].update(kind="openai", base_url=server.base_url, concurrency=4)
        params["train"].update(epochs=1, batch_size=4, max_length=32, learning_curve_sizes=[], seeds=None)
        params["analysis"]["diversity"] = False
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env.update(PYTHONPATH=str(repo / "src"), OPENAI_API_KEY="sk-test-graph")
        for args in (
            ("git", "init", "-q"),
            ("git", "config", "user.email", "t@example.com"),
            ("git", "config", "user.name", "t"),
            ("dvc", "init", "-q"),
        ):
            sh(*args, cwd=repo, env=env)
        first = sh("dvc", "repro", cwd=repo, env=env)
        sh("git", "add", "-A", cwd=repo, env=env)
        sh("git", "commit", "-qm", "first", cwd=repo, env=env)
        yield {"repo": repo, "env": env, "first": first, "server": server}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_first_repro_is_complete_and_then_up_to_date(project: dict) -> None:
    ran = stages_run(project["first"])
    assert {f"generate@{t}-zero_shot" for t in (BUILTIN, CUSTOM)} <= ran and "analyze" in ran
    assert {f"pilot@{t}" for t in (BUILTIN, CUSTOM)} <= ran
    assert status(project["repo"], project["env"]) == set()


def test_editing_a_builtin_prompt_reruns_that_tasks_generation_only(project: dict) -> None:
    repo, env = project["repo"], project["env"]
    spec = repo / "src/synthbench/tasks/builtin" / f"{BUILTIN}.yaml"
    edit(spec, "Output only the review snippet.", "Output only the review snippet, nothing else.")
    changed = status(repo, env)
    # DVC cannot look a dep up per task: every prepare reads the built-in folder, so each is stale…
    assert {f"prepare@{BUILTIN}", f"prepare@{CUSTOM}"} <= changed
    ran = stages_run(sh("dvc", "repro", cwd=repo, env=env))
    # …but only the edited task's snapshot changes, so only its generation and what it feeds re-run.
    assert f"generate@{BUILTIN}-zero_shot" in ran and f"train_synthetic@{BUILTIN}-zero_shot-minilm-l6" in ran
    assert f"evaluate@{BUILTIN}-zero_shot-minilm-l6" in ran
    assert not [stage for stage in ran if CUSTOM in stage and not stage.startswith("prepare@")]
    assert f"train_real@{BUILTIN}-minilm-l6" not in ran  # the prompt is not what a real-data model reads
    assert status(repo, env) == set()


def test_editing_a_custom_tasks_csv_and_prompt_is_seen(project: dict) -> None:
    repo, env = project["repo"], project["env"]
    edit(repo / "tasks/toy_train.csv", "a warm film number 0,pos", "a warm film number zero,pos")
    assert f"prepare@{CUSTOM}" in status(repo, env)  # today: "Data and pipelines are up to date"
    ran = stages_run(sh("dvc", "repro", cwd=repo, env=env))
    assert f"train_real@{CUSTOM}-minilm-l6" in ran and f"generate@{CUSTOM}-zero_shot" in ran  # few-shot pool
    assert not [stage for stage in ran if BUILTIN in stage and not stage.startswith("prepare@")]
    edit(repo / "tasks/toy.yaml", "Write {label_instruction}", "Please write {label_instruction}")
    assert f"prepare@{CUSTOM}" in status(repo, env)
    ran = stages_run(sh("dvc", "repro", cwd=repo, env=env))
    assert f"generate@{CUSTOM}-zero_shot" in ran and f"train_real@{CUSTOM}-minilm-l6" not in ran


def test_params_edits_mark_exactly_the_stages_that_read_them(project: dict) -> None:
    repo, env = project["repo"], project["env"]
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    try:
        edit(params_file, "learning_rate: 0.0001", "learning_rate: 0.0002")
        changed = status(repo, env)
        assert changed == {
            f"train_{kind}@{t}-{suffix}minilm-l6"
            for t in (BUILTIN, CUSTOM)
            for kind, suffix in (("real", ""), ("synthetic", "zero_shot-"))
        }
        params_file.write_text(original)
        edit(params_file, "experiment: synthbench", "experiment: synthbench-other")
        changed = status(repo, env)  # the tracking store is read by training, evaluation and champion
        assert f"evaluate@{BUILTIN}-real-minilm-l6" in changed and "champion" in changed
        assert not [stage for stage in changed if stage.startswith(("prepare", "generate", "analyze"))]
    finally:
        params_file.write_text(original)
    assert status(repo, env) == set()


# --- (2) a stage reads nothing it does not declare -------------------------------------------------------------
class Recorder:
    """Wraps params (and its sections): records every key path read; a method call on a section (``model_dump``)
    records the keys it can read, a property is evaluated on the recorder so its own reads are recorded."""

    def __init__(self, obj: Any, prefix: str, log: set[str]) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_log", log)

    def __getattr__(self, name: str) -> Any:
        obj, prefix, log = self._obj, self._prefix, self._log
        path = f"{prefix}.{name}" if prefix else name
        attribute = getattr(type(obj), name, None)
        if isinstance(attribute, property):
            return attribute.fget(self)
        value = getattr(obj, name)
        if name == "model_dump":

            def dump(*args: Any, include: Any = None, **kwargs: Any) -> Any:
                log.update(f"{prefix}.{key}" for key in (include or type(obj).model_fields))
                return value(*args, include=include, **kwargs)

            return dump
        if callable(value) and not isinstance(value, BaseModel):
            log.add(prefix)  # any other method may read the whole section
            return value
        if isinstance(value, BaseModel):
            return Recorder(value, path, log)
        log.add(path)
        return value


def declared(stage: str) -> list[str]:
    spec = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"][stage]
    return [next(iter(p)) if isinstance(p, dict) else p for p in spec.get("params", [])]


def undeclared(reads: set[str], stage: str) -> list[str]:
    keys = declared(stage)
    return sorted(r for r in reads if not any(r == k or r.startswith(f"{k}.") for k in keys))


COMMANDS = {
    "prepare": ["prepare", "--task", CUSTOM],
    "generate": ["generate", "--task", CUSTOM, "--mode", "zero_shot"],
    "pilot": ["pilot", "--task", CUSTOM],
    "train_real": ["train", "--task", CUSTOM, "--condition", "real", "--backbone", "minilm-l6"],
    "train_synthetic": ["train", "--task", BUILTIN, "--condition", "zero_shot", "--backbone", "minilm-l6"],
    "evaluate": ["evaluate", "--task", CUSTOM, "--condition", "real", "--backbone", "minilm-l6"],
    "champion": ["champion"],
    "analyze": ["analyze"],
}


@pytest.mark.parametrize("stage", list(COMMANDS))
def test_each_stage_reads_only_the_params_it_declares(
    project: dict, stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import synthbench.cli as cli
    from synthbench.config import load_params

    copy = tmp_path / "repo"
    copy_project(project["repo"], copy)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-graph")
    reads: set[str] = set()
    monkeypatch.setattr(cli, "_params", lambda path: Recorder(load_params(path), "", reads))
    result = CliRunner().invoke(cli.app, COMMANDS[stage], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert reads, "the recorder saw no read at all"
    assert undeclared(reads, stage) == [], f"{stage} reads params dvc.yaml does not declare"
