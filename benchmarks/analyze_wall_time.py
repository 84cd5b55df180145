"""Wall time of the analyze stage on the current pipeline outputs: cold (empty embedding cache) vs warm.

Runs ``run_analyze`` in a fresh temporary root whose ``data``, ``models`` and ``results`` are symlinks to the
project's (so the project's ``reports/`` and ``.synthbench/`` are left alone): once with an empty embedding
cache, then ``--repeats`` times with the cache the first run filled. Prints a Markdown table.

Usage (project root, after ``dvc repro``): python benchmarks/analyze_wall_time.py [--params params.yaml] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from synthbench.analysis.stage import Study, run_analyze
from synthbench.config import load_params
from synthbench.layout import Layout
from synthbench.tasks.snapshot import read_task_snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    project = Path.cwd()
    params = load_params(project / args.params)
    with tempfile.TemporaryDirectory(prefix="analyze-bench-") as tmp:
        root = Path(tmp)
        for name in ("data", "models", "results"):
            (root / name).symlink_to(project / name, target_is_directory=True)
        layout = Layout(root)
        study = Study(
            tasks=list(params.tasks),
            modes=list(params.modes),
            conditions=list(params.conditions),
            backbones=list(params.backbones),
            seed=params.seed,
            settings=params.analysis,
            specs={task: read_task_snapshot(layout.task_spec(task)) for task in params.tasks},
        )
        start = time.perf_counter()
        summary = run_analyze(study, layout)
        cold = time.perf_counter() - start
        warm = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run_analyze(study, layout)
            warm.append(time.perf_counter() - start)
        texts = sum(
            len((root / "data" / "real" / task / "train.jsonl").read_text().splitlines())
            + sum(
                len((root / "data" / "synthetic" / task / f"{mode}.jsonl").read_text().splitlines())
                for mode in params.modes
            )
            for task in params.tasks
        )
    print(
        f"tasks: {', '.join(params.tasks)}; texts embedded when cold: {texts}; figures: {summary['figures']}\n"
    )
    print("| run | seconds |\n|---|---:|")
    print(f"| cold (empty embedding cache) | {cold:.1f} |")
    print(f"| warm (median of {len(warm)}) | {statistics.median(warm):.1f} |")


if __name__ == "__main__":
    main()
