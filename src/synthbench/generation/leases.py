"""Who holds a lease in the journal: ``host:pid:start`` (the kernel's start time of the process, so a reused pid
is not mistaken for a dead owner), and whether that owner still runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

# A lease from another host (a shared file system, another container) cannot be checked by pid: it counts as
# live while its owner refreshes it (every client.LEASE_HEARTBEAT_S while sending).
FOREIGN_LEASE_S = 90.0


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot; /proc), so a reused pid is not mistaken for
    the lease's owner. None when the process does not exist (or /proc is not there)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_owner(pid: int | None = None) -> str:
    """``host:pid:start``: who holds a lease."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def owner_alive(owner: str, claimed_at: float, now: float) -> bool:
    """Whether the process named by ``owner`` still runs (another host's: whether the lease is recent)."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname():
        return now - claimed_at < FOREIGN_LEASE_S
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    current = _start_time(pid)
    return current is not None and (start == "?" or current == start)
