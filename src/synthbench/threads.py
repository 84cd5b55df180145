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

import os
from collections.abc import Mapping

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
