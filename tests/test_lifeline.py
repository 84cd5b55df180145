"""The stage dies with the DVC that ran it through a wrapper shell, and only under DVC (nohup keeps working)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthbench.lifeline import _stat, shell_chain

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc only")

# runner (python) → /bin/sh -c "<stage>; true" (the trailing command keeps dash from exec'ing) → stage
RUNNER = """
import subprocess, sys
stage = subprocess.Popen(["/bin/sh", "-c", sys.argv[1] + "; true"])
print(stage.pid, flush=True)
stage.wait()
"""
STAGE = (
    f"{sys.executable} -c 'import os, time, signal; from synthbench.lifeline import die_with_stage_runner; "
    "die_with_stage_runner(signal.SIGTERM); print(os.getpid(), flush=True); time.sleep(60)'"
)


def _tree(env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, STAGE],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert runner.stdout is not None
    runner.stdout.readline()  # the shell's pid
    stage_pid = int(runner.stdout.readline())
    return runner, stage_pid


def _alive(pid: int) -> bool:
    """Running and not a zombie; a process reaped between the two reads is gone, not an error."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.parametrize(("under_dvc", "dies"), [(True, True), (False, False)])
def test_the_stage_follows_its_runner_through_a_shell_only_under_dvc(under_dvc: bool, dies: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
    if under_dvc:
        env["DVC_STAGE"] = "generate"
    runner, stage = _tree(env)
    try:
        chain = shell_chain(stage)
        assert len(chain) == 1 and chain[0][1] == runner.pid, chain  # one shell, then the runner
        runner.kill()
        runner.wait()
        deadline = time.monotonic() + 3
        while _alive(stage) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(stage) is not dies
    finally:
        if _alive(stage):
            os.kill(stage, signal.SIGKILL)


def test_a_process_name_with_spaces_and_parentheses_is_parsed(tmp_path: Path) -> None:
    odd = tmp_path / "sl (x) y"
    odd.write_bytes(Path("/bin/sleep").read_bytes())
    odd.chmod(0o755)
    proc = subprocess.Popen([str(odd), "30"])
    try:
        time.sleep(0.2)
        assert _stat(proc.pid) == ("sl (x) y", os.getpid())
    finally:
        proc.kill()
        proc.wait()
    assert _stat(proc.pid) is None  # reaped: gone
