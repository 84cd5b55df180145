"""The harness of the abuse matrix (tests/test_abuse_matrix.py): a tiny synthbench project against the fake
OpenAI server, ``synthbench`` run as a user runs it (a subprocess), and the checks every case must pass."""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from synthbench.testing.openai_server import ServerHandle

KEY_VAR = "SYNTHBENCH_ABUSE_KEY"
SECRET = "sk-abuse-" + secrets.token_hex(12)  # the key value: must appear nowhere we write or print
TOKEN_SECRET = "Zq" + secrets.token_hex(16) + "x9"  # a pasted key that does not look like sk-…
CASE_VAR = "SYNTHBENCH_ABUSE_CASE"  # marks every process a case starts, to find leftovers
OUTPUTS = (
    "data/synthetic/tiny/zero_shot.jsonl",
    "data/synthetic/tiny/zero_shot.summary.json",
    "data/synthetic/tiny/zero_shot.card.md",
    "data/real/tiny/test.jsonl",
    "data/real/tiny/stats.json",
    "data/synthetic/tiny/few_shot.jsonl",
)

SPEC: dict[str, Any] = {
    "name": "tiny",
    "description": "tiny sentiment",
    "subjectivity": 2,
    "labels": [
        {"name": "pos", "description": "good", "instruction": "a positive review"},
        {"name": "neg", "description": "bad", "instruction": "a negative review"},
    ],
    "source": {"kind": "local", "files": {"train": "train.csv", "test": "test.csv"}},
    "prompt": {
        "context": "You write reviews.",
        "generation": "Write {label_instruction} about {style}, at most {length_words} words.",
        "styles": ["a film", "a book"],
        "length_words": 20,
    },
}
TRAIN_ROWS = [
    {"text": f"a {'good' if i % 2 else 'bad'} film number {i}", "label": "pos" if i % 2 else "neg"}
    for i in range(8)
]


def base_params(server: ServerHandle) -> dict[str, Any]:
    return {
        "seed": 0,
        "tasks": ["tiny"],
        "custom_tasks": {"tiny": "tiny.yaml"},
        "task_files": {"specs": ".", "data": "."},
        "generate": {
            "endpoint": {
                "kind": "openai",
                "base_url": server.base_url,
                "model": "test-model",
                "api_key_env": KEY_VAR,
                "concurrency": 4,
                "timeout_s": 5,
                "max_retries": 2,
            },
            "per_label": 2,
            "diversity_every": 0,
            "near_duplicate_threshold": None,
            "max_attempts_factor": 2,
        },
    }


def merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``updates`` deep-merged (a value of None deletes the key)."""
    out = copy.deepcopy(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@dataclass
class Case:
    """One abuse: what to break, what must come out. ``key``: text the one error line must contain."""

    id: str
    expect: int
    key: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    raw_params: str | bytes | None = None  # written instead of params.yaml
    spec: dict[str, Any] = field(default_factory=dict)  # deep-merged into the task spec
    raw_spec: str | bytes | None = None
    files: dict[str, str | bytes | None] = field(
        default_factory=dict
    )  # extra files (relative path → content)
    server: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ("generate", "--task", "tiny", "--mode", "zero_shot")
    rerun_pays_nothing: bool = False  # run again: the second run must send no request
    allow_repaid: int = 0  # kill -9 loses the answers in flight: they are paid again, at most this many
    check_paid: bool = True
    max_wall_s: float = 60.0
    killed: bool = False  # ended by kill -9: it cannot say anything, so no error line is expected
    scenario: str | None = None  # a name in tests/abuse_scenarios.py: runs the case its own way


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    wall_s: float

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def write_project(root: Path, server: ServerHandle, case: Case) -> set[Path]:
    """Write the case's project; returns the input files (which may hold what the user pasted)."""
    params = merge(base_params(server), case.params)
    inputs = {root / "params.yaml", root / "tiny.yaml"}
    if case.raw_params is not None:
        _write(root / "params.yaml", case.raw_params)
    else:
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if case.raw_spec is not None:
        _write(root / "tiny.yaml", case.raw_spec)
    else:
        (root / "tiny.yaml").write_text(yaml.safe_dump(merge(SPEC, case.spec), sort_keys=False))
    (root / "train.csv").write_text(
        "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in TRAIN_ROWS)
    )
    (root / "test.csv").write_text("text,label\na fine film,pos\na dull film,neg\n")
    real = root / "data" / "real" / "tiny"
    real.mkdir(parents=True)
    (real / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in TRAIN_ROWS))
    for rel, content in case.files.items():
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            continue  # removed
        if content == "<dir>":
            path.mkdir()
        else:
            _write(path, content)
        inputs.add(path)
    _write_snapshot(root)
    return inputs


PREPARE = ("prepare", "--task", "tiny")


def _write_snapshot(root: Path) -> None:
    """What prepare saves of a valid spec (task.json, labels.json), which generate reads; none for a spec that
    does not load: prepare is the stage that reads (and refuses) a spec, before anything is paid."""
    from synthbench.errors import SynthbenchError
    from synthbench.layout import Layout
    from synthbench.tasks import load_task
    from synthbench.tasks.snapshot import write_task_snapshot

    try:
        custom = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))["custom_tasks"]
        spec = load_task("tiny", {"tiny": str(root / custom["tiny"])})
    except (SynthbenchError, OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return
    layout = Layout(root)
    write_task_snapshot(spec, layout.task_spec("tiny"))
    layout.labels("tiny").write_text(json.dumps(spec.label_names), encoding="utf-8")


def stage_args(case: Case, root: Path) -> tuple[str, ...]:
    """The case's command; a generate case whose spec does not load runs prepare, the first stage reading it."""
    from synthbench.layout import Layout

    if case.args[:1] == ("generate",) and not Layout(root).task_spec("tiny").exists():
        return PREPARE
    return case.args


def _write(path: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def env_for(case_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SYNTHBENCH_JOURNAL", "MLFLOW_TRACKING_URI")}
    env.update({KEY_VAR: SECRET, CASE_VAR: case_id, "PYTHONUNBUFFERED": "1"})
    return env


def synthbench_exe() -> str:
    return shutil.which("synthbench") or str(Path(sys.executable).with_name("synthbench"))


def start(root: Path, case_id: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [synthbench_exe(), *args],
        cwd=root,
        env=env_for(case_id),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[str], started: float, timeout: float = 120) -> Outcome:
    out, err = proc.communicate(timeout=timeout)
    return Outcome(proc.returncode, out, err, time.monotonic() - started)


def run(root: Path, case_id: str, *args: str, timeout: float = 120) -> Outcome:
    started = time.monotonic()
    return finish(start(root, case_id, *args), started, timeout)


def interrupt_when(server: ServerHandle, proc: subprocess.Popen[str], sig: int, answered: int = 2) -> None:
    """Send ``sig`` once the server has answered ``answered`` requests (requests are then in flight)."""
    deadline = time.monotonic() + 30
    while server.stats()["answered"] < answered and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(sig)


def error_lines(outcome: Outcome) -> list[str]:
    return [line for line in outcome.text.splitlines() if line.startswith("error:")]


def leftovers(case_id: str) -> list[str]:
    """Processes still running that a case started (marked by CASE_VAR in their environment)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid != os.getpid() and proc.environ().get(CASE_VAR) == case_id:
                found.append(" ".join(proc.info["cmdline"] or [])[:120])
        except (psutil.Error, OSError):
            continue
    return found


def reap(case_id: str) -> None:
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(CASE_VAR) == case_id:
                proc.send_signal(signal.SIGKILL)
        except (psutil.Error, OSError):
            continue


def secret_hits(root: Path, inputs: set[Path], outcome_text: str) -> list[str]:
    """Where a key value shows up: the output, or any file under the project we did not write ourselves."""
    hits = [f"output:{s[:6]}" for s in (SECRET, TOKEN_SECRET) if s in outcome_text]
    for path in root.rglob("*"):
        if path.is_file() and path not in inputs:
            data = path.read_bytes()
            hits += [
                f"{path.relative_to(root)}:{s[:6]}" for s in (SECRET, TOKEN_SECRET) if s.encode() in data
            ]
    return hits


@dataclass
class Totals:
    """What the whole matrix saw (written to benchmarks/RESULTS.md by hand from the test's summary line)."""

    cases: int = 0
    tracebacks: int = 0
    repaid: int = 0
    leaks: int = 0
    orphans: int = 0
    wrong_exit: int = 0
    bad_error_line: int = 0
    trusted_output: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"abuse matrix: {self.cases} cases, {self.tracebacks} tracebacks, {self.repaid} repaid calls, "
            f"{self.leaks} leaks, {self.orphans} orphans, {self.wrong_exit} wrong exit codes, "
            f"{self.bad_error_line} bad error lines, {self.trusted_output} trusted partial outputs"
        )
