"""How many threads a compute engine (llama.cpp, torch) of this process may run: never more than the cores this
process may use (its CPU affinity, which containers, ``taskset`` and cgroups' cpusets narrow), shared with the
other processes of one budget.

- ``SYNTHBENCH_THREADS=N``: this process's threads, at most (e.g. ``1`` for each of two queued experiments);
- ``SYNTHBENCH_WORKERS=J``: J processes share the cores (``dvc queue start -j J``; the sweep's variable):
  each gets ``cores // J`` (at least 1);
- an explicit param (``generate.endpoint.n_threads``, ``train.torch_threads``) wins, capped at the cores.

More threads than cores never helps a compute-bound engine: they wait on each other (llama.cpp's threads meet at a
barrier per layer), and a thread that spins while its core is busy elsewhere burns the time the others needed."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

from synthbench.errors import ConfigError

THREADS_ENV = "SYNTHBENCH_THREADS"
WORKERS_ENV = "SYNTHBENCH_WORKERS"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _positive(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"${name}={raw!r}: must be a whole number ≥ 1; fix or unset it")
    return value


def thread_budget(
    explicit: int | None = None, *, cores: int | None = None, env: Mapping[str, str] | None = None
) -> int:
    """Threads for this process's engine: ``explicit`` if given, else ``$SYNTHBENCH_THREADS``, else the cores
    divided among ``$SYNTHBENCH_WORKERS`` processes, else every core — always at most ``cores`` (default: the
    cores this process may use) and at least 1."""
    cores = usable_cores() if cores is None else max(1, cores)
    env = os.environ if env is None else env
    if explicit is not None:
        return max(1, min(explicit, cores))
    threads = _positive(env, THREADS_ENV)
    if threads is not None:
        return min(threads, cores)
    jobs = _positive(env, WORKERS_ENV)
    if jobs is not None:
        return max(1, cores // jobs)
    return cores


def budget_is_fixed(explicit: int | None = None, *, env: Mapping[str, str] | None = None) -> bool:
    """Whether the thread count was set by hand (a param or ``$SYNTHBENCH_THREADS``): then it is kept as given,
    and no load watch (:class:`ForeignLoad`) second-guesses it."""
    env = os.environ if env is None else env
    return explicit is not None or _positive(env, THREADS_ENV) is not None


def threads_beside(foreign_cores: float, budget: int) -> int:
    """Threads for an engine whose ``budget`` cores are shared with ``foreign_cores`` cores' worth of other
    processes (a measured average): one thread fewer per other busy core (half a core or more counts as busy),
    at least 1. A thread that shares its core with another busy process stalls every barrier of the layer."""
    busy = math.floor(max(0.0, foreign_cores) + 0.5)
    return max(1, budget - busy)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_busy_ticks(cpus: set[int]) -> int | None:
    """Busy time of ``cpus`` since boot, in clock ticks, from ``/proc/stat``: user, system, irq, softirq and
    steal, not ``nice`` (processes at a positive nice value, such as a ``nice -n 19`` build, yield their core to
    ours: they are no competitor). None where there is no such file (not Linux)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    total = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            fields = [int(x) for x in rest.split()]
            total += fields[0] + fields[2] + fields[5] + fields[6] + fields[7]
    return total


def _tree_ticks(root: int) -> int:
    """CPU time (user + system, clock ticks) of ``root`` and every live process descended from it."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, …; utime is 14th
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [root]
    while todo:  # one pass down the tree (a pid has one parent: each is reached once)
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo += children.get(pid, [])
    return total


class ForeignLoad:
    """The cores this process's CPUs spent on *other* processes (not this one, not its children) between two
    calls of :meth:`sample`: what competes with an engine for its cores. Linux ``/proc``; elsewhere the
    samples are None (nothing to act on)."""

    def __init__(self, root: int | None = None) -> None:
        self.root = os.getpid() if root is None else root
        try:
            self.cpus = set(os.sched_getaffinity(0))
        except AttributeError:
            self.cpus = set()
        self._last = self._read()

    def _read(self) -> tuple[float, int, int] | None:
        busy = _cpu_busy_ticks(self.cpus) if self.cpus else None
        if busy is None:
            return None
        return time.monotonic(), busy, _tree_ticks(self.root)

    def sample(self) -> float | None:
        """Average cores busy with other processes since the previous call (or construction)."""
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return None
        elapsed_ticks = (now[0] - last[0]) * _CLOCK_TICKS
        foreign = (now[1] - last[1]) - (now[2] - last[2])
        return max(0.0, foreign / elapsed_ticks)
