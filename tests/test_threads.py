"""Threads that share the machine: an engine never gets more threads than the cores this process may use, and
a shared budget (SYNTHBENCH_THREADS, SYNTHBENCH_WORKERS) divides them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from synthbench.errors import ConfigError
from synthbench.threads import (
    THREADS_ENV,
    WORKERS_ENV,
    ForeignLoad,
    budget_is_fixed,
    thread_budget,
    threads_beside,
    usable_cores,
)


def test_usable_cores_is_the_affinity_mask() -> None:
    assert usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("explicit", "env", "cores", "expected"),
    [
        (None, {}, 8, 8),  # every core this process may use
        (None, {THREADS_ENV: "3"}, 8, 3),  # a budget
        (None, {THREADS_ENV: "32"}, 8, 8),  # never more than the cores
        (None, {WORKERS_ENV: "2"}, 8, 4),  # two queue workers share them
        (None, {WORKERS_ENV: "3"}, 2, 1),  # at least one
        (None, {THREADS_ENV: "2", WORKERS_ENV: "4"}, 8, 2),  # an explicit budget wins over the division
        (6, {THREADS_ENV: "1"}, 8, 6),  # the param wins over the env
        (16, {}, 2, 2),  # a param is capped at the cores too
    ],
)
def test_thread_budget(explicit: int | None, env: dict[str, str], cores: int, expected: int) -> None:
    assert thread_budget(explicit, cores=cores, env=env) == expected


def test_a_process_pinned_to_one_core_gets_one_thread() -> None:
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert thread_budget(env={}) == 1
        assert thread_budget(8, env={}) == 1
    finally:
        os.sched_setaffinity(0, before)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_budget_is_a_one_line_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^\${THREADS_ENV}='{value}': must be a whole number ≥ 1"):
        thread_budget(env={THREADS_ENV: value})


def test_torch_threads_null_follows_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from synthbench.config import TrainParams
    from synthbench.training import finetune

    monkeypatch.setenv(THREADS_ENV, "1")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(max(2, before))
        finetune.set_torch_threads(TrainParams(torch_threads=None))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("foreign", "budget", "expected"),
    [
        (0.0, 2, 2),  # a quiet machine: every core
        (0.3, 2, 2),  # a passing blip is not a competitor
        (0.6, 2, 1),  # one busy process (it got 0.6 of a core beside a collapsed engine)
        (1.0, 2, 1),
        (2.0, 2, 1),  # never below one thread
        (1.6, 8, 6),
        (-0.1, 4, 4),  # rounding noise below zero
    ],
)
def test_threads_beside_leave_each_busy_core_to_its_process(
    foreign: float, budget: int, expected: int
) -> None:
    assert threads_beside(foreign, budget) == expected


def test_a_budget_is_fixed_only_when_set_by_hand() -> None:
    assert not budget_is_fixed(None, env={})
    assert not budget_is_fixed(None, env={WORKERS_ENV: "2"})  # a share, still fitted to the load
    assert budget_is_fixed(2, env={})
    assert budget_is_fixed(None, env={THREADS_ENV: "2"})


_ORPHAN_BURNER = """
import subprocess, sys
burner = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(burner.pid, flush=True)
"""


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_foreign_load_counts_other_processes_not_this_one_or_its_children() -> None:
    load = ForeignLoad()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # ours: a child
    try:
        _spin(1.0)  # ours: this process
        ours = load.sample()
    finally:
        child.kill()
        child.wait()
    # Its parent exits at once, so the burner is no descendant of ours: someone else's process.
    pid = int(subprocess.run([sys.executable, "-c", _ORPHAN_BURNER], capture_output=True, text=True).stdout)
    try:
        load.sample()
        time.sleep(1.0)
        foreign = load.sample()
    finally:
        os.kill(pid, signal.SIGKILL)
    assert ours is not None and foreign is not None
    assert ours < 0.35, ours  # two busy processes of ours, none foreign
    assert 0.7 < foreign < 1.3, foreign  # one busy process elsewhere: one core
