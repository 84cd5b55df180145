"""Stage 1 — prepare: a task's real data → ``data/real/<task>/{train,test}.jsonl``, ``stats.json`` and the task
spec snapshot ``task.json`` that every later stage of the task reads (and declares as a DVC dep)."""

from synthbench.prepare.splits import PreparedTask, build_real_splits, dedupe
from synthbench.prepare.stage import run_prepare

__all__ = ["PreparedTask", "build_real_splits", "dedupe", "run_prepare"]
