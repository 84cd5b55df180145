"""Stop when the DVC process that ran this stage dies, even when a shell sits between us.

``prctl(PR_SET_PDEATHSIG)`` signals us when our *parent* dies. DVC runs a stage's ``cmd`` as
``$SHELL -c "<cmd>"`` (``/bin/sh`` when ``SHELL`` is unset: containers, cron, CI). bash execs a lone command,
so DVC is our parent; dash (Debian's ``/bin/sh``) does not, so the shell is our parent and outlives a DVC that
was sent SIGTERM or SIGKILL. Without this watch the stage then runs on, pays for answers and writes outputs
that no ``dvc.lock`` records. Linux only (``/proc``); elsewhere a no-op.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "ash", "busybox", "fish"})
POLL_S = 0.2  # how long a dead runner goes unnoticed at most; reading /proc costs microseconds


def _stat(pid: int) -> tuple[str, int] | None:
    """``(comm, ppid)`` of a live process, None once it is gone (``/proc/<pid>/stat``)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm is parenthesised and may itself hold spaces or ')': split at the last ')'
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, int(fields[1])  # fields: state, ppid, ...


def shell_chain(pid: int) -> list[tuple[int, int]]:
    """The wrapper shells above ``pid``: ``[(shell_pid, its_parent_pid), ...]`` from the nearest up, stopping
    at the first ancestor that is not a shell (the runner: DVC). Empty when our parent is no shell."""
    chain: list[tuple[int, int]] = []
    info = _stat(pid)
    while info is not None:
        parent = info[1]
        parent_info = _stat(parent) if parent > 1 else None
        if parent_info is None or parent_info[0] not in SHELLS:
            break
        chain.append((parent, parent_info[1]))
        info = parent_info
    return chain


def die_with_stage_runner(signum: int = signal.SIGTERM) -> threading.Thread | None:
    """Under ``dvc repro`` (``DVC_STAGE`` is set), send ``signum`` to ourselves once a wrapper shell between us
    and DVC loses its parent. Only then: a user's ``nohup sh -c 'synthbench …' &`` must outlive their login."""
    if "DVC_STAGE" not in os.environ or not Path("/proc/self/stat").exists():
        return None
    chain = shell_chain(os.getpid())
    if not chain:
        return None  # DVC is our parent: PR_SET_PDEATHSIG already covers its death
    me = os.getpid()

    def intact() -> bool:
        return all((info := _stat(shell)) is not None and info[1] == parent for shell, parent in chain)

    def watch() -> None:
        while intact():
            threading.Event().wait(POLL_S)
        os.kill(me, signum)

    thread = threading.Thread(target=watch, name="synthbench-lifeline", daemon=True)
    thread.start()
    return thread
