"""A team stack on real servers, all on 127.0.0.1 and started here: PostgreSQL as MLflow's backend store,
SeaweedFS's S3 gateway as MLflow's artifact store and as the DVC remote, ``mlflow server`` between them, and the
OpenAI test server as the one generation endpoint. Two clones of one bare git remote play two machines:

- A reproduces task tiny_sport's stages and publishes them (``dvc push`` + ``dvc push --run-cache``);
- B reproduces tiny_food's, publishes them, then ``dvc repro --pull`` restores A's stages from the remote
  (no LLM call, no training) and runs ``champion`` and ``analyze`` over both tasks;
- a fresh process loads ``models:/synthbench-<task>@champion`` through the server (artifacts from S3);
- B merges A's journal with ``synthbench cache merge``.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from openai_server import ServerConfig, serve
from stack import alive, base_env, make_project, mlflow_server, postgres, s3_client, seaweed_s3, sh

pytestmark = pytest.mark.slow
TASK_A, TASK_B = "tiny_sport", "tiny_food"
BUCKET = "synthbench"


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


_RESTORED = re.compile(r"Pulling data for stage: '([^']+)'|Stage '([^']+)' is cached - skipping run")


def restored(output: str) -> set[str]:
    """Stages DVC brought back instead of running: pulled by their dvc.lock entry, or from the run cache."""
    return {by_lock or by_run_cache for by_lock, by_run_cache in _RESTORED.findall(output)}


def train_runs(tracking_uri: str) -> list[str]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("synthbench")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], "tags.`synthbench.stage` = 'train'")
    return [run.info.run_id for run in runs]


def test_stack_processes_are_stopped_by_pid_also_on_failure() -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="a stage failed"), contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres(pids))
        stack.enter_context(seaweed_s3(pids, buckets=(BUCKET,)))
        assert pg.url.startswith("postgresql+psycopg2://synthbench@127.0.0.1:")
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        raise RuntimeError("a stage failed")
    assert not any(alive(pid) for pid in pids)


@pytest.fixture(scope="module")
def team(module_tmp: Path) -> Iterator[dict]:
    pids: list[int] = []
    root = module_tmp
    with contextlib.ExitStack() as stack:
        llm = stack.enter_context(serve(ServerConfig(), in_process=False))
        pg = stack.enter_context(postgres(pids))
        s3 = stack.enter_context(seaweed_s3(pids, buckets=(BUCKET,)))
        ml = stack.enter_context(mlflow_server(pids, pg.url, f"s3://{BUCKET}/mlflow", s3.env))
        env = {**{k: v for k, v in s3.env.items() if k.startswith("AWS_")}, **ml.env}

        seed = make_project(root / "seed", [TASK_A, TASK_B], llm.base_url)
        sh("dvc", "remote", "add", "-d", "team", f"s3://{BUCKET}/dvc", cwd=seed)
        sh("dvc", "remote", "modify", "team", "endpointurl", s3.url, cwd=seed)
        sh("git", "commit", "-qam", "team remote", cwd=seed)
        sh("git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git"), cwd=root)
        sh("git", "push", "-q", str(root / "origin.git"), "main", cwd=seed)
        a, b = root / "machine-a", root / "machine-b"
        for clone in (a, b):
            sh("git", "clone", "-q", str(root / "origin.git"), str(clone), cwd=root)

        out_a = sh("dvc", "repro", "--glob", f"evaluate@{TASK_A}-*", f"pilot@{TASK_A}", cwd=a, env=env)
        sh("dvc", "push", cwd=a, env=env)
        sh("dvc", "push", "--run-cache", cwd=a, env=env)
        # git carries dvc.lock and the uncached metrics.json files (DVC pushes only cached outputs)
        sh("git", "add", "-A", cwd=a)
        sh("git", "commit", "-qm", f"machine A: {TASK_A}", cwd=a)
        sh("git", "push", "-q", "origin", "main", cwd=a)
        answered_a = llm.stats()["answered"]

        out_b = sh("dvc", "repro", "--glob", f"evaluate@{TASK_B}-*", f"pilot@{TASK_B}", cwd=b, env=env)
        sh("dvc", "push", cwd=b, env=env)
        sh("dvc", "push", "--run-cache", cwd=b, env=env)
        sh("git", "add", "-A", cwd=b)
        sh("git", "commit", "-qm", f"machine B: {TASK_B}", cwd=b)
        rejected = subprocess.run(
            ["git", "push", "-q", "origin", "main"], cwd=b, capture_output=True, text=True, check=False
        )
        # A pushed first. B's lock would collide with A's: set it aside (README "Scaling out"); B's stages are
        # in its run cache, and `dvc repro --pull` re-derives their lock entries.
        sh("git", "reset", "-q", "HEAD~1", cwd=b)
        sh(
            "git",
            "stash",
            "push",
            "-q",
            "-u",
            "--",
            "dvc.lock",
            "data/real/.gitignore",
            "reports/pilot/.gitignore",
            cwd=b,
        )
        sh("git", "pull", "-q", "origin", "main", cwd=b)
        sh("git", "stash", "drop", "-q", cwd=b)
        answered, trainings = llm.stats()["answered"], train_runs(ml.url)
        aggregate = sh("dvc", "repro", "--pull", cwd=b, env=env)
        sh("git", "add", "-A", cwd=b)
        sh("git", "commit", "-qm", f"aggregate: {TASK_A} + {TASK_B}, champion, analyze", cwd=b)
        sh("git", "push", "-q", "origin", "main", cwd=b)
        yield {
            "a": a,
            "b": b,
            "env": env,
            "mlflow": ml.url,
            "s3": s3.url,
            "out_a": out_a,
            "out_b": out_b,
            "answered_a": answered_a,
            "answered_b": answered - answered_a,
            "aggregate": aggregate,
            "aggregate_calls": llm.stats()["answered"] - answered,
            "trainings_before": trainings,
            "trainings_after": train_runs(ml.url),
            "pids": pids,
            "rejected": rejected.returncode,
        }
    assert not any(alive(pid) for pid in pids), "a server outlived the stack"


def test_each_machine_runs_only_its_slice(team: dict) -> None:
    assert {s.split("@")[1].split("-")[0] for s in stages_run(team["out_a"])} == {TASK_A}
    assert {s.split("@")[1].split("-")[0] for s in stages_run(team["out_b"])} == {TASK_B}
    assert team["answered_a"] > 0 and team["answered_b"] > 0


def test_repro_pull_restores_the_other_machines_stages_without_calls_or_training(team: dict) -> None:
    assert team["rejected"] != 0  # B's first push lost the race to A's, as it would on two machines
    ran = stages_run(team["aggregate"])
    # review@… only creates/validates a git-tracked file (cache: false, so never in the remote): no call, no training
    assert {stage for stage in ran if not stage.startswith("review@")} == {"champion", "analyze"}
    sliced = {
        stage
        for out in (team["out_a"], team["out_b"])
        for stage in stages_run(out)
        if not stage.startswith("review@")
    }
    assert len(sliced) == 14 and sliced <= restored(team["aggregate"])  # both machines' stages, none re-run
    assert team["aggregate_calls"] == 0
    assert team["trainings_after"] == team["trainings_before"]  # 0 trainings: same runs, none new
    summary = (team["b"] / "reports" / "summary.md").read_text()
    assert f"| {TASK_A} | minilm-l6 | real |" in summary and f"| {TASK_B} | minilm-l6 | real |" in summary
    champions = json.loads((team["b"] / "reports" / "champions.json").read_text())
    assert set(champions) == {TASK_A, TASK_B}
    lock = (team["b"] / "dvc.lock").read_text()  # the aggregated lock, pushed: every stage of both tasks
    assert f"train_real@{TASK_A}-minilm-l6" in lock and f"train_real@{TASK_B}-minilm-l6" in lock


def test_runs_live_in_postgres_and_artifacts_in_s3(team: dict) -> None:
    assert len(team["trainings_after"]) == 8  # 2 tasks × 2 conditions × (parent + seed run)
    objects = s3_client(team["s3"]).list_objects_v2(Bucket=BUCKET, Prefix="mlflow/")
    assert any(obj["Size"] > 1_000_000 for obj in objects.get("Contents", []))  # model weights
    dvc_objects = s3_client(team["s3"]).list_objects_v2(Bucket=BUCKET, Prefix="dvc/")
    assert dvc_objects["KeyCount"] > 0


def test_a_fresh_process_loads_each_champion_from_the_server(team: dict) -> None:
    code = (
        "import mlflow, json, sys\n"
        "out = {}\n"
        f"for task, text in (('{TASK_A}', 'the striker scored a goal in the league match'),\n"
        f"                   ('{TASK_B}', 'knead the dough and bake the bread in the oven')):\n"
        "    model = mlflow.pyfunc.load_model(f'models:/synthbench-{task}@champion')\n"
        "    out[task] = list(model.predict([text]))\n"
        "print(json.dumps(out))\n"
    )
    # No S3 credentials here: the server proxies the artifacts it keeps in S3.
    env = {**base_env(), "MLFLOW_TRACKING_URI": team["mlflow"]}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    predictions = json.loads(done.stdout.strip().splitlines()[-1])
    assert predictions[TASK_A][0] in {"football", "tennis"}
    assert predictions[TASK_B][0] in {"baking", "grilling"}


def test_cache_merge_joins_the_machines_journals(team: dict) -> None:
    journals = {name: team[name] / ".synthbench" / "journal.sqlite" for name in ("a", "b")}

    def keys(path: Path) -> list[str]:
        with sqlite3.connect(path) as conn:
            return [key for (key,) in conn.execute("SELECT key FROM completions")]

    union = set(keys(journals["a"])) | set(keys(journals["b"]))
    sh("synthbench", "cache", "merge", str(journals["a"]), cwd=team["b"])
    merged = keys(journals["b"])
    assert len(merged) == len(set(merged)) == len(union)
    again = sh("synthbench", "cache", "merge", str(journals["a"]), cwd=team["b"])
    assert ", 0 new," in again
