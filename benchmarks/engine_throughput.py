"""Embedded engines side by side, in one run (absolute rates drift on shared machines; ratios within a run hold).

1. The physical limit: llama.cpp's own ``llama-batched-bench`` on the same GGUF and threads: prompt and generation
   tokens/s at B = 1, 2, 4, 8, 16 parallel sequences.
2. End to end through ``ChatClient`` (the generate stage's client, fresh journal each time), on the default
   study's bbc_news few-shot prompts (params.yaml's sampling, real examples from the pinned corpus): requests/s
   and generated tokens/s for llama-cpp-python's server (the baseline, one request at a time) vs llama-server
   at N slots, with and without prompt-prefix reuse, for each of the embedded weights' GGUF types (``--gguf-types``:
   the shipped Q4_1 and its Q8_0 re-encoding). The requests go out in the stage's order (prefix-ordered).
3. Latency per request (one at a time) with one competing CPU-bound process vs quiet, for both engines.

    PYTHONPATH=src .venv/bin/python benchmarks/engine_throughput.py [--requests 20] [--slots 4,8] [--skip-bench]
        [--gguf-types Q4_1,Q8_0]

Needs the built llama-server (``python -m synthbench.generation.llama_build``). Prints a markdown table."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from statistics import mean

from synthbench.config import load_params
from synthbench.data.sources import load_raw
from synthbench.generation.client import ChatClient, ChatRequest
from synthbench.generation.endpoint import EndpointConfig
from synthbench.generation.journal import Journal
from synthbench.generation.llama_build import ensure_built
from synthbench.generation.modes import strategy_from_params
from synthbench.generation.rounds import Plan, prefix_order
from synthbench.generation.server import embedded_server
from synthbench.generation.strategies import SampleSlot
from synthbench.generation.weights import SHIPPED_TYPE, embedded_model_path
from synthbench.tasks.registry import load_task
from synthbench.tasks.spec import TaskSpec
from synthbench.threads import thread_budget

ALIAS = "smollm2-135m-instruct"


def real_by_label(spec: TaskSpec, cap: int = 200) -> dict[str, list[str]]:
    """Up to ``cap`` real texts per label straight from the task's source, for benchmarks that build the stage's
    prompts without prepare's output."""
    raw, _ = load_raw(spec)
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in raw["all"]:
        if len(by_label[label]) < cap:
            by_label[label].append(text)
    return by_label


def few_shot_requests(n: int, params_path: Path) -> list[ChatRequest]:
    """The default study's first ``n`` few-shot requests for bbc_news (round-robin over the labels)."""
    params = load_params(params_path)
    gen = params.generate
    spec = load_task("bbc_news")
    # The stage's builder, on the source's rows (the benchmark runs without prepare's output).
    strategy = strategy_from_params("few_shot", spec, params.seed, gen, real_by_label(spec))
    plan = Plan.build("bbc_news", "few_shot", spec, strategy, "bench", gen)
    labels = spec.label_names
    return [plan.request(SampleSlot(labels[i % len(labels)], i // len(labels)), []) for i in range(n)]


def client_run(base_url: str, requests: list[ChatRequest], concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "j.sqlite") as journal:
        client = ChatClient(
            EndpointConfig(
                base_url=base_url, model=ALIAS, api_key_env=None, concurrency=concurrency, timeout_s=300
            ),
            journal,
        )
        started = time.perf_counter()
        answers = client.run(prefix_order(requests))
        wall = time.perf_counter() - started
        latencies = [a.latency_s for a in answers.values()]
    return {
        "wall_s": wall,
        "req_s": len(requests) / wall,
        "gen_tok_s": sum(a.completion_tokens for a in answers.values()) / wall,
        "prompt_tokens": mean(a.prompt_tokens for a in answers.values()),
        "completion_tokens": mean(a.completion_tokens for a in answers.values()),
        "latency_s": mean(latencies),
    }


def batched_bench(binary: Path, model: Path, threads: int, npp: int, ntg: int) -> list[dict[str, float]]:
    out = subprocess.run(
        [
            str(binary),
            "-m",
            str(model),
            "-c",
            str(16 * (npp + ntg) + 64),
            "-b",
            "2048",
            "-ub",
            "512",
            "-npp",
            str(npp),
            "-ntg",
            str(ntg),
            "-npl",
            "1,2,4,8,16",
            "-t",
            str(threads),
            "-tb",
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and re.fullmatch(r"\d+", cells[0]):
            rows.append({"B": int(cells[2]), "pp_tok_s": float(cells[5]), "tg_tok_s": float(cells[7])})
    return rows


_ORPHAN_BURNER = """
import subprocess, sys
burner = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(burner.pid, flush=True)
"""


def competitor() -> int:
    """Start a CPU-bound process that is not ours (its parent exits at once, as another user's job would be:
    the engine's load watch counts only processes outside this one's tree); returns its pid."""
    out = subprocess.run([sys.executable, "-c", _ORPHAN_BURNER], capture_output=True, text=True, check=True)
    return int(out.stdout)


def stop_competitor(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--slots", default="4,8")
    ap.add_argument("--latency-requests", type=int, default=6)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument(
        "--latency-threads", default="", help="also measure latency at these thread counts, e.g. 1"
    )
    ap.add_argument(
        "--latency-engines", default="llama-cpp-python,llama-server", help="engines of the latency table"
    )
    ap.add_argument(
        "--latency-auto",
        action="store_true",
        help="measure latency with the default thread count (n_threads null: fitted to the load) instead of "
        "every core, plus any --latency-threads",
    )
    ap.add_argument("--gguf-types", default="Q4_1,Q8_0", help="llama-server's weights, comma list")
    args = ap.parse_args()
    threads = thread_budget()
    binary = ensure_built()
    models = {kind: embedded_model_path(kind) for kind in args.gguf_types.split(",")}
    model = embedded_model_path(SHIPPED_TYPE)  # the baseline's: today's server reads the shipped file
    requests = few_shot_requests(args.requests, args.params)
    load_before = os.getloadavg()
    print(
        f"SmolLM2-135M-Instruct, {threads} threads, {len(os.sched_getaffinity(0))} usable cores, "
        f"load average before {load_before[0]:.2f}; {len(requests)} bbc_news few-shot requests"
    )

    if not args.skip_bench:
        print("\n| weights | llama-batched-bench B | prompt tok/s | generation tok/s |\n|---|---|---|---|")
        best_tg = 0.0
        for kind, path in models.items():
            bench = batched_bench(binary / "llama-batched-bench", path, threads, npp=256, ntg=64)
            for row in bench:
                print(f"| {kind} | {row['B']} | {row['pp_tok_s']:.1f} | {row['tg_tok_s']:.1f} |")
            best_tg = max(best_tg, *(row["tg_tok_s"] for row in bench))
    else:
        best_tg = float("nan")

    configs: list[tuple[str, Path, dict[str, object], int]] = [
        (f"llama-cpp-python, {SHIPPED_TYPE} (baseline)", model, {}, 1)
    ]
    for kind, path in models.items():
        for slots, reuse in [(1, True)] + [(int(n), r) for n in args.slots.split(",") for r in (False, True)]:
            configs.append(
                (
                    f"llama-server {kind}, {slots} slot{'s' * (slots > 1)}, prefix reuse {'on' if reuse else 'off'}",
                    path,
                    {
                        "engine": "llama-server",
                        "binary": binary / "llama-server",
                        "parallel": slots,
                        "prefix_reuse": reuse,
                    },
                    slots,
                )
            )
    results = []
    for name, path, kwargs, concurrency in [] if args.skip_e2e else configs:
        with embedded_server(path, alias=ALIAS, n_ctx=2048, **kwargs) as base_url:  # type: ignore[arg-type]
            client_run(base_url, requests[:2], 1)  # warm-up (not journaled with the measured run)
            results.append((name, client_run(base_url, requests, concurrency)))
    base = results[0][1] if results else {"req_s": float("nan")}
    print(
        "\n| engine | requests/s | × baseline | generated tok/s | % of batched-bench best | mean prompt / "
        "completion tokens |\n|---|---|---|---|---|---|"
    )
    for name, r in results:
        print(
            f"| {name} | {r['req_s']:.3f} | {r['req_s'] / base['req_s']:.2f} | {r['gen_tok_s']:.1f} | "
            f"{100 * r['gen_tok_s'] / best_tg:.0f}% | {r['prompt_tokens']:.0f} / {r['completion_tokens']:.0f} |"
        )

    print(
        "\n| engine (one request at a time) | threads | latency quiet (s) | with 1 CPU-bound competitor (s) | "
        "ratio |\n|---|---|---|---|---|"
    )
    # Loaded requests are other prompts than the quiet ones: a repeated prompt would be read from llama-server's
    # prompt cache, and a loaded request would look faster than it is.
    few = requests[: args.latency_requests]
    others = requests[args.latency_requests : 2 * args.latency_requests] or few
    counts: list[int | None] = [threads] + [int(t) for t in args.latency_threads.split(",") if t]
    if args.latency_auto:  # the default (fitted to the load), then any fixed counts asked for
        counts = [None, *counts[1:]]
    for (name, path, kwargs), n_threads in (
        []
        if not few
        else [
            ((name, path, kwargs), n)
            for n in counts
            for name, path, kwargs in (
                ("llama-cpp-python", model, {}),
                *(
                    (
                        f"llama-server {kind}",
                        path,
                        {"engine": "llama-server", "binary": binary / "llama-server", "parallel": 1},
                    )
                    for kind, path in models.items()
                ),
            )
            if name.split()[0] in args.latency_engines.split(",")
        ]
    ):
        with embedded_server(path, alias=ALIAS, n_ctx=2048, n_threads=n_threads, **kwargs) as base_url:  # type: ignore[arg-type]
            client_run(base_url, few[:1], 1)
            # wall time per request, sent one at a time: a retried request's failed try counts too
            quiet = mean(client_run(base_url, [r], 1)["wall_s"] for r in few)
            hog = competitor()
            try:
                time.sleep(1)
                # one at a time, so the first (sent 1 s after the competitor began) is seen apart
                loaded_each = [client_run(base_url, [r], 1)["wall_s"] for r in others]
            finally:
                stop_competitor(hog)
        loaded = mean(loaded_each)
        label = "auto (load watch)" if n_threads is None else str(n_threads)
        print(
            f"| {name} | {label} | {quiet:.2f} | {loaded:.2f} (first {loaded_each[0]:.2f}, rest "
            f"{mean(loaded_each[1:] or loaded_each):.2f}) | {loaded / quiet:.1f}× |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
