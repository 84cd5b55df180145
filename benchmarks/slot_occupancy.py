"""How full the engine's slots were during each generate stage, read back from a journal (issue 10).

Each journaled answer has its arrival time (``created_at``) and the latency of the attempt that got it
(``latency_s``), so ``[created_at - latency_s, created_at]`` is when it was in flight. With ``parallel`` slots and
the client sending that many at once, the time-weighted mean of requests in flight says how much of the engine the
stage used: the gap to ``parallel`` is time the stage kept slots empty (a round waiting for its slowest answer
before the next one is built, the start and the end), not the engine's speed. Retried attempts are not in the
journal, so a stage with restarts reads emptier than it was.

    PYTHONPATH=src .venv/bin/python benchmarks/slot_occupancy.py JOURNAL [--slots 8]

Prints a Markdown table per (task, mode): answers, span (first send to last answer, s), mean in flight, the share
of the span with every slot busy, and with at most half of them.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path


def occupancy(intervals: list[tuple[float, float]], slots: int) -> tuple[float, float, float, float]:
    """(span s, mean in flight, share of the span with ≥ ``slots`` in flight, share with ≤ slots/2) for
    ``intervals`` of (start, end) seconds."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    span = events[-1][0] - events[0][0]
    busy_time = full = half = 0.0
    level, last = 0, events[0][0]
    for when, step in events:
        width = when - last
        busy_time += level * width
        full += width if level >= slots else 0.0
        half += width if level <= slots / 2 else 0.0
        level, last = level + step, when
    return span, busy_time / span, full / span, half / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("journal", type=Path)
    parser.add_argument("--slots", type=int, default=8)
    args = parser.parse_args()
    with sqlite3.connect(f"file:{args.journal}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT task, mode, created_at, latency_s FROM completions WHERE latency_s > 0 ORDER BY created_at"
        ).fetchall()
    stages: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for task, mode, created_at, latency in rows:
        stages.setdefault((task, mode), []).append((created_at - latency, created_at))
    print(f"{args.journal}, {args.slots} slots")
    print("| task | mode | answers | span (s) | mean in flight | all slots busy | ≤ half busy |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (task, mode), intervals in sorted(stages.items()):
        span, mean, full, half = occupancy(intervals, args.slots)
        print(f"| {task} | {mode} | {len(intervals)} | {span:.0f} | {mean:.2f} | {full:.0%} | {half:.0%} |")


if __name__ == "__main__":
    main()
