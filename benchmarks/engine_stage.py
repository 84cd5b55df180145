"""The generate stage itself on each embedded engine, side by side in one run (issue 10).

``engine_throughput.py`` times 20 requests through the client; this times what a user waits for: ``synthbench
generate`` of the default study's task and mode (every round, diversity prompts, filters, journal), each engine
with a fresh journal and the same params.yaml otherwise. Run on a quiet machine: at 2 threads on 2 cores either
engine slows many-fold beside another CPU-bound process.

    PYTHONPATH=src .venv/bin/python benchmarks/engine_stage.py [--task bbc_news] [--mode few_shot]
        [--per-label 20] [--engines llama-cpp-python,llama-server]

Prints a Markdown table: wall time, calls, calls/s and the ratio to the first engine's calls/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SYNTHBENCH_JOURNAL"}  # a fresh journal per engine
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="bbc_news")
    parser.add_argument("--mode", default="few_shot")
    parser.add_argument("--per-label", type=int, default=20)
    parser.add_argument("--engines", default="llama-cpp-python,llama-server")
    args = parser.parse_args()
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    synthbench = [str(Path(sys.executable).parent / "synthbench")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="engine-stage-") as tmp:
        for engine in args.engines.split(","):
            root = Path(tmp) / engine
            root.mkdir()
            # one task and mode; no mixes or curve points, so `conditions` need only these
            params = dict(
                base, tasks=[args.task], modes=[args.mode], mixes=[], conditions=["real", args.mode]
            )
            params["train"] = dict(base["train"], learning_curve_sizes=[])
            params["generate"] = dict(base["generate"], per_label=args.per_label)
            params["generate"]["endpoint"] = dict(base["generate"]["endpoint"], engine=engine)
            (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            run([*synthbench, "prepare", "--task", args.task], root)
            started = time.monotonic()
            run([*synthbench, "generate", "--task", args.task, "--mode", args.mode], root)
            wall = time.monotonic() - started
            summary = json.loads((root / f"data/synthetic/{args.task}/{args.mode}.summary.json").read_text())
            calls = summary["client"]["calls_made"]
            rows.append((engine, summary["endpoint"], wall, calls, calls / wall))
    print(
        f"{args.task} {args.mode}, per_label {args.per_label}, threads {os.environ.get('SYNTHBENCH_THREADS', 'all')}"
    )
    print("| engine | endpoint | wall (s, with start-up) | calls | calls/s | × first |")
    print("|---|---|---|---|---|---|")
    for engine, endpoint, wall, calls, rate in rows:
        print(f"| {engine} | {endpoint} | {wall:.1f} | {calls} | {rate:.2f} | {rate / rows[0][4]:.2f} |")


if __name__ == "__main__":
    main()
