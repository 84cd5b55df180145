"""Wall time of each stage of `dvc repro` on this machine, the total, and the no-op re-run.

Usage (from the project root, after `pip install -e .`):
    python benchmarks/pipeline_wall_time.py [--force] [--params-note TEXT]

It streams `dvc repro`, timestamps every "Running stage '...'" line (a stage's time = until the next stage
starts or the run ends), prints a table, then runs `dvc repro` again (nothing to do: the baseline for DVC's
own overhead) and prints the ratio. Stage times include process start-up (imports), which is real cost.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import defaultdict

STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def timed_repro(extra: list[str]) -> tuple[list[tuple[str, float]], float, str]:
    started = time.perf_counter()
    process = subprocess.Popen(
        ["dvc", "repro", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    marks: list[tuple[str, float]] = []
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        match = STAGE_LINE.search(line)
        if match:
            marks.append((match.group(1), time.perf_counter()))
    code = process.wait()
    ended = time.perf_counter()
    if code != 0:
        sys.stdout.write("".join(lines[-40:]))
        raise SystemExit(f"dvc repro failed with exit code {code}")
    durations = [
        (name, (marks[i + 1][1] if i + 1 < len(marks) else ended) - at) for i, (name, at) in enumerate(marks)
    ]
    return durations, ended - started, "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--force", action="store_true", help="dvc repro -f: rebuild everything")
    args = parser.parse_args()
    durations, total, _ = timed_repro(["-f"] if args.force else [])
    by_kind: dict[str, float] = defaultdict(float)
    print("| stage | seconds |\n|---|---:|")
    for name, seconds in durations:
        by_kind[name.split("@")[0]] += seconds
        print(f"| {name} | {seconds:.1f} |")
    print(f"| **total `dvc repro`** | **{total:.1f}** |\n")
    print("| stage kind | seconds | share |\n|---|---:|---:|")
    for kind, seconds in by_kind.items():
        print(f"| {kind} | {seconds:.1f} | {seconds / total:.0%} |")
    _, noop, output = timed_repro([])
    ran = STAGE_LINE.findall(output)
    print(f"\nno-op re-run: {noop:.2f} s, stages run: {len(ran)}; full run / no-op = {total / noop:.0f}x")


if __name__ == "__main__":
    main()
