"""Batch mode through `dvc repro`: the generate stage submits a Batch API job to the fake OpenAI server, exits
"pending" without waiting, is SIGKILLed (its whole process group) while waiting, and a re-run resumes the same
job: one batch, one upload, no chat call, the dataset written at half price."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from tests.conftest import REPO_ROOT

from synthbench.generation.journal import Journal
from synthbench.testing.openai_server import serve

pytestmark = pytest.mark.slow
STAGE = "generate@toy-zero_shot"
PRICE_IN, PRICE_OUT = 2.0, 4.0
SPEC = {
    "name": "toy",
    "description": "toy sentiment",
    "subjectivity": 2,
    "labels": [{"name": "pos", "description": "good"}, {"name": "neg", "description": "bad"}],
    "source": {"kind": "local", "files": {"train": "tasks/train.csv", "test": "tasks/test.csv"}},
    "prompt": {"context": "You write reviews.", "generation": "Write {label_instruction} about {style}."},
}


def csv(n: int, offset: int = 0) -> str:
    rows = [f"a warm film number {i + offset},pos\na dull film number {i + offset},neg" for i in range(n)]
    return "text,label\n" + "\n".join(rows) + "\n"


def run(args: list[str], repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False)


def set_wait(repo: Path, wait: bool) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"]["endpoint"]["batch_wait"] = wait
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def wait_for(predicate: Any, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def project(tmp_path: Path) -> Any:
    repo = tmp_path / "study"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO_ROOT / name, repo / name)
    shutil.copytree(
        REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (repo / "tasks").mkdir()
    (repo / "tasks/toy.yaml").write_text(yaml.safe_dump(SPEC))
    (repo / "tasks/train.csv").write_text(csv(6))
    (repo / "tasks/test.csv").write_text(csv(3, offset=20))
    with serve() as server:
        server.configure(batch_polls=10**6)  # never done until the test says so
        params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
        params.update(
            tasks=["toy"],
            modes=["zero_shot"],
            mixes=[],
            conditions=["real", "zero_shot"],
            custom_tasks={"toy": "tasks/toy.yaml"},
            task_files={"specs": "tasks", "data": "tasks"},
        )
        params["prepare"].update(train_per_label=6, test_per_label=3, min_chars=1)
        params["generate"].update(
            per_label=3,
            diversity_every=0,
            max_tokens=40,
            max_attempts_factor=2,
            min_words=2,
            near_duplicate_threshold=None,
            price_in_per_mtok=PRICE_IN,
            price_out_per_mtok=PRICE_OUT,
        )
        params["generate"]["endpoint"].update(
            kind="openai",
            base_url=server.base_url,
            model="test-model",
            api_key_env="BATCH_TEST_KEY",
            mode="batch",
            batch_wait=False,
            batch_poll_s=0.2,
        )
        params["train"].update(learning_curve_sizes=[], seeds=None)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {**os.environ, "PYTHONPATH": str(repo / "src"), "BATCH_TEST_KEY": "sk-batch-test"}
        for args in (
            ["git", "init", "-q"],
            ["git", "config", "user.email", "t@example.com"],
            ["git", "config", "user.name", "t"],
            ["dvc", "init", "-q"],
        ):
            assert run(args, repo, env).returncode == 0
        yield repo, env, server


def test_batch_mode_pends_survives_a_kill_and_resumes_the_same_batch(project: Any) -> None:
    repo, env, server = project
    # 1. wait: false → submitted, not done: one line, non-zero, nothing written
    pending = run(["dvc", "repro", STAGE], repo, env)
    assert pending.returncode != 0
    errors = [line for line in (pending.stdout + pending.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1, pending.stdout + pending.stderr
    assert re.search(r"batch batch_000001 pending: 0/6 done; re-run `dvc repro` later", errors[0]), errors[0]
    assert not (repo / "data/synthetic/toy/zero_shot.jsonl").exists()
    stats = server.stats()
    assert (stats["batches_created"], stats["files"], stats["chat_requests"]) == (1, 1, 0)

    # 2. wait: true → it polls; SIGKILL its whole process group during the wait
    set_wait(repo, True)
    proc = subprocess.Popen(
        ["dvc", "repro", STAGE],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    polls = server.stats()["batch_polls"]
    wait_for(lambda: server.stats()["batch_polls"] >= polls + 2)  # waiting, polling with backoff
    group = [p for p in psutil.process_iter() if _in_group(p, proc.pid)]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    _gone, alive = psutil.wait_procs(group, timeout=20)
    assert not alive, f"processes outlived the kill: {alive}"
    stats = server.stats()
    assert (stats["batches_created"], stats["files"]) == (1, 1)  # the same batch, resumed, not resubmitted

    # 3. the batch completes; a re-run resumes it: nothing submitted, nothing asked online
    server.configure(batch_polls=server.stats()["batch_polls"] + 1)
    done = run(["dvc", "repro", STAGE], repo, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming" in done.stdout + done.stderr
    stats = server.stats()
    assert stats["batches_created"] == 1 and stats["chat_requests"] == 0
    assert stats["files"] == 2  # the one upload + the batch's output file
    assert stats["batch_lines_answered"] == 6

    rows = [
        json.loads(line) for line in (repo / "data/synthetic/toy/zero_shot.jsonl").read_text().splitlines()
    ]
    assert sorted(r["label"] for r in rows) == ["neg"] * 3 + ["pos"] * 3
    summary = json.loads((repo / "data/synthetic/toy/zero_shot.summary.json").read_text())
    assert summary["endpoint_mode"] == "batch" and summary["price_factor"] == 0.5
    with Journal(repo / ".synthbench/journal.sqlite") as journal:
        answers = journal.get_many([r["request_key"] for r in rows])
    tokens_in = sum(a.prompt_tokens for a in answers.values())
    tokens_out = sum(a.completion_tokens for a in answers.values())
    full_price = (tokens_in * PRICE_IN + tokens_out * PRICE_OUT) / 1e6
    assert summary["client"]["cost_usd"] == pytest.approx(full_price / 2)
    assert summary["client"]["batches_submitted"] == 0 and summary["client"]["batch_ids"] == ["batch_000001"]
    card = (repo / "data/synthetic/toy/zero_shot.card.md").read_text()
    assert "Batch API price (0.5 × the synchronous price)" in card
    # and DVC calls the stage up to date: a further repro asks nothing
    again = run(["dvc", "repro", STAGE], repo, env)
    assert again.returncode == 0 and "didn't change, skipping" in again.stdout + again.stderr
    assert server.stats()["batches_created"] == 1


def _in_group(process: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid
    except (ProcessLookupError, psutil.Error):
        return False
