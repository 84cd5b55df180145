"""Cases of the abuse matrix that need more than one command: concurrent runs, interrupts, journals."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from tests.abuse_harness import (
    OUTPUTS,
    Case,
    Outcome,
    env_for,
    finish,
    interrupt_when,
    run,
    start,
    synthbench_exe,
)

from synthbench.testing.openai_server import ServerHandle

GEN = ("generate", "--task", "tiny", "--mode", "zero_shot")
JOURNAL = ".synthbench/journal.sqlite"


def _params(root: Path, name: str = "params.yaml") -> dict:
    return yaml.safe_load((root / name).read_text())


def _write_params(root: Path, params: dict, name: str = "params.yaml") -> None:
    (root / name).write_text(yaml.safe_dump(params, sort_keys=False))


def _set(root: Path, name: str = "params.yaml", **generate: object) -> None:
    params = _params(root)
    endpoint = generate.pop("endpoint", {})
    params["generate"].update(generate)
    params["generate"]["endpoint"].update(endpoint)
    _write_params(root, params, name)


def _clear_outputs(root: Path) -> None:
    for rel in OUTPUTS:
        (root / rel).unlink(missing_ok=True)


def _together(outcomes: list[Outcome]) -> Outcome:
    code = next((o.code for o in outcomes if o.code), 0)
    return Outcome(
        code,
        "".join(o.stdout for o in outcomes),
        "".join(o.stderr for o in outcomes),
        max(o.wall_s for o in outcomes),
    )


def _resume_completes(root: Path, server: ServerHandle, case: Case) -> None:
    """After an interrupt: a re-run completes; its outputs are removed again (the case judges the interrupt)."""
    again = run(root, case.id, *case.args)
    assert again.code == 0 and "Traceback" not in again.text, again.stderr[-2000:]
    assert all((root / rel).exists() for rel in OUTPUTS[:3])
    _clear_outputs(root)


def salvage(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    (root / ".synthbench").mkdir(exist_ok=True)
    (root / JOURNAL).write_bytes(b"garbage" * 1000)
    fixed = run(root, case.id, "cache", "check", "--salvage")
    assert fixed.code == 0 and "salvaged" in fixed.stdout, fixed.text
    return run(root, case.id, *GEN)


def _journal_keys(root: Path) -> list[str]:
    with sqlite3.connect(root / JOURNAL) as conn:
        return [key for (key,) in conn.execute("SELECT key FROM completions")]


def stale_lease(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    first = run(root, case.id, *GEN)
    assert first.code == 0, first.stderr
    keys = _journal_keys(root)
    with sqlite3.connect(root / JOURNAL) as conn:  # answers lost, leases of a dead process left behind
        conn.execute("DELETE FROM completions")
        conn.executemany(
            "INSERT INTO leases (key, owner, claimed_at) VALUES (?, ?, ?)",
            [(k, f"{socket.gethostname()}:999999999:1", time.time()) for k in keys],
        )
    _clear_outputs(root)
    server.reset()
    second = run(root, case.id, *GEN)
    assert server.stats()["answered"] == len(keys)
    return second


def old_schema(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    first = run(root, case.id, *GEN)
    assert first.code == 0, first.stderr
    with sqlite3.connect(root / JOURNAL) as conn:  # back to the first schema: no lossless column, no leases
        conn.execute("ALTER TABLE completions DROP COLUMN text_raw")
        conn.execute("DROP TABLE leases")
        conn.execute("PRAGMA user_version=1")
    _clear_outputs(root)
    server.reset()
    second = run(root, case.id, *GEN)
    assert server.stats()["answered"] == 0, "an old journal's answers were paid again"
    return second


def _at_once(root: Path, server: ServerHandle, case: Case, names: list[str]) -> Outcome:
    server.configure(latency_s=0.15)
    _set(root, per_label=6)
    started = time.monotonic()
    procs = [start(root, case.id, *GEN, "-p", name) for name in names]
    return _together([finish(proc, started) for proc in procs])


def two_at_once(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    return _at_once(root, server, case, ["params.yaml", "params.yaml"])


def three_at_once(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    return _at_once(root, server, case, ["params.yaml"] * 3)


def two_spellings(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    _set(root, per_label=6)
    params = _params(root)
    params["generate"]["endpoint"]["base_url"] = server.base_url.replace("127.0.0.1", "localhost") + "/"
    _write_params(root, params, "params2.yaml")
    return _at_once(root, server, case, ["params.yaml", "params2.yaml"])


def respell(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    first = run(root, case.id, *GEN)
    assert first.code == 0, first.stderr
    base = server.base_url
    spelled = {
        "{base}/": base + "/",
        "localhost": base.replace("127.0.0.1", "localhost"),
        "LOCALHOST": base.replace("http://127.0.0.1", "HTTP://LOCALHOST"),
    }[arg]
    _set(root, endpoint={"base_url": spelled})
    _clear_outputs(root)
    server.reset()
    second = run(root, case.id, *GEN)
    assert server.stats()["answered"] == 0, f"{spelled!r} paid for journaled answers again"
    return second


def signal_in_flight(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    if not case.server.get("fault_rates"):
        server.configure(latency_s=0.3)
    _set(root, per_label=6)
    started = time.monotonic()
    proc = start(root, case.id, *GEN)
    if case.server.get("fault_rates"):
        time.sleep(2.0)  # retrying 503s with backoff
        proc.send_signal(getattr(signal, arg))
    else:
        interrupt_when(server, proc, getattr(signal, arg))
    outcome = finish(proc, started)
    assert not any((root / rel).exists() for rel in OUTPUTS), "an interrupted run left outputs"
    if not case.server.get("fault_rates"):
        server.wait_idle()
        _resume_completes(root, server, case)
    return outcome


def sigterm_waiting(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    server.configure(latency_s=4.0)  # the holder is still waiting for its answers when the waiter is stopped
    started = time.monotonic()
    holder = start(root, case.id, *GEN)
    interrupt_deadline = time.monotonic() + 20
    while server.stats()["in_service"] < 4 and time.monotonic() < interrupt_deadline:
        time.sleep(0.02)
    waiter = start(root, case.id, *GEN)
    time.sleep(1.2)  # it found the keys leased and waits for their answers
    waiter.send_signal(signal.SIGTERM)
    outcome = finish(waiter, started)
    held = finish(holder, started)
    assert held.code == 0, held.stderr[-2000:]
    _clear_outputs(root)
    return outcome


def kill9(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    server.configure(latency_s=0.3)
    _set(root, per_label=6)
    started = time.monotonic()
    proc = start(root, case.id, *GEN)
    interrupt_when(server, proc, signal.SIGKILL)
    finish(proc, started)
    server.wait_idle()
    return run(root, case.id, *GEN)  # stale leases reclaimed, journaled answers not paid again


def parent_dies(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    """``kill -9`` of the process that ran synthbench (DVC, a shell): synthbench stops as on SIGTERM."""
    server.configure(latency_s=0.3)
    _set(root, per_label=6)
    started = time.monotonic()
    command = " ".join([synthbench_exe(), *GEN]) + "; true"  # bash must stay the parent: no exec
    shell = subprocess.Popen(
        ["bash", "-c", command],
        cwd=root,
        env=env_for(case.id),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while server.stats()["answered"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    shell.kill()
    out, err = shell.communicate(timeout=60)  # EOF once synthbench (holding the pipes) has exited
    code = 143 if any(line.startswith("error: terminated") for line in err.splitlines()) else -1
    assert not any((root / rel).exists() for rel in OUTPUTS)
    return Outcome(code, out, err, time.monotonic() - started)


SCENARIOS: dict[str, Callable[[Path, ServerHandle, Case, str], Outcome]] = {
    "salvage": salvage,
    "stale_lease": stale_lease,
    "old_schema": old_schema,
    "two_at_once": two_at_once,
    "three_at_once": three_at_once,
    "two_spellings": two_spellings,
    "respell": respell,
    "signal": signal_in_flight,
    "sigterm_waiting": sigterm_waiting,
    "kill9": kill9,
    "parent_dies": parent_dies,
}


DVC_YAML = """stages:
  generate:
    cmd: synthbench generate --task tiny --mode zero_shot
    deps:
      - data/real/tiny/task.json
      - data/real/tiny/train.jsonl
    params:
      - seed
      - generate
    outs:
      - data/synthetic/tiny/zero_shot.jsonl
      - data/synthetic/tiny/zero_shot.summary.json
      - data/synthetic/tiny/zero_shot.card.md
"""


def _dvc_project(root: Path, case: Case) -> None:
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / ".gitignore").write_text(".synthbench/\n")
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(args, cwd=root, env=env_for(case.id), check=True, capture_output=True)


def _dvc_trusts_nothing(root: Path, case: Case) -> None:
    """No lock entry, no run-cache entry, and ``dvc status`` says the stage must run."""
    lock = root / "dvc.lock"
    assert not lock.exists() or "generate" not in lock.read_text()
    runs = root / ".dvc" / "cache" / "runs"
    assert not runs.exists() or not any(p.is_file() for p in runs.rglob("*"))
    status = subprocess.run(["dvc", "status"], cwd=root, env=env_for(case.id), capture_output=True, text=True)
    assert "generate" in status.stdout, status.stdout


def dvc(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    """``dvc repro`` of a generate stage that must fail: nothing for the next ``dvc repro`` to trust. DVC runs
    the cmd as ``$SHELL -c``: bash execs it (DVC is its parent); ``-sh`` picks ``/bin/sh``, which on Debian
    (dash) stays between DVC and synthbench, as in a container or CI without ``SHELL``."""
    _dvc_project(root, case)
    through_sh = arg.endswith("-sh")
    arg = arg.removesuffix("-sh")
    env = {**env_for(case.id), "SHELL": "/bin/sh" if through_sh else shutil.which("bash") or "/bin/bash"}
    started = time.monotonic()
    proc = subprocess.Popen(
        ["dvc", "repro"],
        cwd=root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    if arg == "sigterm":
        interrupt_when(server, proc, signal.SIGTERM)
    elif arg == "kill-group":
        deadline = time.monotonic() + 30
        while server.stats()["answered"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    outcome = finish(proc, started)
    time.sleep(1.0)  # parent-death signals take effect
    _dvc_trusts_nothing(root, case)
    ours = [line for line in outcome.text.splitlines() if line.startswith("error:")]
    # dvc's own "ERROR:" lines are its business; the case judges synthbench's one line and dvc's exit code
    code = 0 if outcome.code == 0 else case.expect
    return Outcome(code, outcome.stdout, "\n".join(ours) + "\n", outcome.wall_s)


SCENARIOS["dvc"] = dvc


def two_worktrees(root: Path, server: ServerHandle, case: Case, arg: str) -> Outcome:
    """Two checkouts (e.g. git worktrees, or queued ``dvc exp`` runs) sharing one journal file, run at once:
    one by ``generate.journal`` as an absolute path, the other by ``SYNTHBENCH_JOURNAL``."""
    shared = root / "shared-journal.sqlite"
    other = root / "other-checkout"
    other.mkdir()
    for name in ("tiny.yaml", "data"):
        src = root / name
        subprocess.run(["cp", "-r", str(src), str(other / name)], check=True)
    server.configure(latency_s=0.15)
    _set(root, per_label=6, journal=str(shared))
    params = _params(root)
    params["generate"]["journal"] = ".synthbench/not-this-one.sqlite"
    _write_params(other, params)
    started = time.monotonic()
    first = start(root, case.id, *GEN)
    env = {**env_for(case.id), "SYNTHBENCH_JOURNAL": str(shared)}
    second = subprocess.Popen(
        [synthbench_exe(), *GEN],
        cwd=other,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    outcome = _together([finish(first, started), finish(second, started)])
    assert not (other / ".synthbench" / "not-this-one.sqlite").exists()
    subprocess.run(["rm", "-rf", str(other / "data" / "synthetic")], check=True)
    return outcome


SCENARIOS["two_worktrees"] = two_worktrees
