"""The generate stage itself on each embedded engine, side by side in one run (issue 10).

``engine_throughput.py`` times 20 requests through the client; this times what a user waits for: ``synthbench
generate`` of the default study's task and mode (every round, diversity prompts, filters, journal), each engine
with a fresh journal and the same params.yaml otherwise. Run on a quiet machine: at 2 threads on 2 cores either
engine slows many-fold beside another CPU-bound process.

    PYTHONPATH=src .venv/bin/python benchmarks/engine_stage.py [--task bbc_news] [--mode few_shot]
        [--per-label 20] [--engines llama-cpp-python,llama-server] [--gguf-types default,Q4_1,Q8_0]
        [--cache-ram default,0,8192]

``--burst-every S --burst-s D``: an outside CPU-bound process for D seconds every S seconds during each
generation (a passing job, as `tar` or a compile on a shared machine), which the engine's load watch answers
with restarts; the table then also shows the client's retries. ``--cache-ram``: llama-server's host-memory
prompt cache (MiB, ``LLAMA_ARG_CACHE_RAM``; ``default``: what synthbench passes), one llama-server run per value.
``--gguf-types``: the embedded weights (``generate.endpoint.gguf_type``; ``default``: the engine's own), one run
per engine and type. Prints a Markdown table: wall time, calls, calls/s, the engine's peak resident memory and
the ratio to the first run's calls/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from engine_throughput import competitor, stop_competitor

REPO = Path(__file__).resolve().parents[1]


ENGINE_MARKERS = ("llama-server", "llama_cpp.server")


def run(
    cmd: list[str], cwd: Path, cache_ram: str | None = None, burst: tuple[float, float] | None = None
) -> float:
    """Run ``cmd``; returns the peak resident memory (MiB) of any embedded engine process seen meanwhile."""
    drop = {"SYNTHBENCH_JOURNAL", "LLAMA_ARG_CACHE_RAM"}  # a fresh journal per run; the cache size as asked
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if cache_ram is not None:
        env["LLAMA_ARG_CACHE_RAM"] = cache_ram
    peak = [0.0]
    done_event = threading.Event()
    watchers = [threading.Thread(target=_watch_engine_rss, args=(peak, done_event), daemon=True)]
    if burst is not None:
        watchers.append(threading.Thread(target=_bursts, args=(*burst, done_event), daemon=True))
    for thread in watchers:
        thread.start()
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    finally:
        done_event.set()
        for thread in watchers:
            thread.join()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return peak[0]


def _bursts(every_s: float, length_s: float, done: threading.Event) -> None:
    """An outside CPU-bound process for ``length_s`` seconds, every ``every_s`` seconds, until ``done``."""
    while not done.wait(every_s - length_s):
        pid = competitor()
        try:
            done.wait(length_s)
        finally:
            stop_competitor(pid)


def _watch_engine_rss(peak: list[float], done: threading.Event) -> None:
    """Twice a second: the largest VmHWM (peak RSS) of a process whose command line names an engine."""
    while not done.wait(0.5):
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or proc.name == str(os.getpid()):  # this script names the engines too
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if not any(marker in cmdline for marker in ENGINE_MARKERS):
                    continue
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) / 1024)
            except OSError:
                continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="bbc_news")
    parser.add_argument("--mode", default="few_shot")
    parser.add_argument("--per-label", type=int, default=20)
    parser.add_argument("--engines", default="llama-cpp-python,llama-server")
    parser.add_argument("--burst-every", type=float, default=0.0, help="seconds; 0: no outside load")
    parser.add_argument("--burst-s", type=float, default=3.0)
    parser.add_argument(
        "--cache-ram", default="default", help="llama-server prompt cache sizes (MiB), comma list"
    )
    parser.add_argument("--gguf-types", default="default", help="embedded weights, comma list: Q4_1, Q8_0")
    args = parser.parse_args()
    runs = [
        (engine, None if kind == "default" else kind, None if size == "default" else size)
        for engine in args.engines.split(",")
        for kind in args.gguf_types.split(",")
        for size in (args.cache_ram.split(",") if engine == "llama-server" else ["default"])
    ]
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    synthbench = [str(Path(sys.executable).parent / "synthbench")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="engine-stage-") as tmp:
        for number, (engine, gguf_type, cache_ram) in enumerate(runs):
            root = Path(tmp) / f"{number}-{engine}-{gguf_type or 'default'}-{cache_ram or 'default'}"
            root.mkdir()
            # one task and mode; no mixes or curve points, so `conditions` need only these
            params = dict(
                base, tasks=[args.task], modes=[args.mode], mixes=[], conditions=["real", args.mode]
            )
            params["train"] = dict(base["train"], learning_curve_sizes=[])
            params["generate"] = dict(base["generate"], per_label=args.per_label)
            params["generate"]["endpoint"] = dict(
                base["generate"]["endpoint"], engine=engine, gguf_type=gguf_type
            )
            (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            run([*synthbench, "prepare", "--task", args.task], root)
            started = time.monotonic()
            burst = (args.burst_every, args.burst_s) if args.burst_every > 0 else None
            rss = run(
                [*synthbench, "generate", "--task", args.task, "--mode", args.mode], root, cache_ram, burst
            )
            wall = time.monotonic() - started
            summary = json.loads((root / f"data/synthetic/{args.task}/{args.mode}.summary.json").read_text())
            calls = summary["client"]["calls_made"]
            retries = sum(summary["client"]["retries"].values())
            backoff = summary["client"]["backoff_s"]
            label = f"{engine}, {gguf_type or 'default'} weights"
            if engine == "llama-server":
                label += f", cache-ram {cache_ram or 'default'}"
            rows.append((label, summary["endpoint"], wall, calls, calls / wall, rss, retries, backoff))
    print(
        f"{args.task} {args.mode}, per_label {args.per_label}, threads {os.environ.get('SYNTHBENCH_THREADS', 'all')}"
    )
    if args.burst_every > 0:
        print(f"outside load: a CPU-bound process for {args.burst_s:g} s every {args.burst_every:g} s")
    print(
        "| engine | endpoint | wall (s, with start-up) | calls | retried | backoff (s, all requests) "
        "| calls/s | engine peak RSS (MiB) | × first |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for engine, endpoint, wall, calls, rate, rss, retries, backoff in rows:
        print(
            f"| {engine} | {endpoint} | {wall:.1f} | {calls} | {retries} | {backoff:.0f} | {rate:.2f} | {rss:.0f} "
            f"| {rate / rows[0][4]:.2f} |"
        )


if __name__ == "__main__":
    main()
