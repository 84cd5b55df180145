"""Generation throughput of ChatClient.

Part 1 (default): against the loopback OpenAI-compatible test server (tests/openai_server.py, run in a
subprocess) with 200 ms latency and 64 concurrent slots (429 beyond, with or without Retry-After). Reports
ChatClient's requests/s as a fraction of the server's capacity (64 / 0.2 s = 320 req/s; goal ≥ 90%) and as a
ratio to a plain sequential loop with the openai client measured in the same run (goal ≥ 50×).

    PYTHONPATH=src .venv/bin/python benchmarks/generation_throughput.py [--n 2000] [--concurrency 96]

Part 2 (``--llama-server URL``): generated tokens/s through ChatClient against an already running llama.cpp
server (e.g. ``python -m llama_cpp.server --model X.gguf --port 8080`` → ``--llama-server
http://127.0.0.1:8080/v1``). The test server is not used then.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from openai_server import ServerConfig, serve
from synthbench.generation.client import ChatClient, ChatRequest, EndpointConfig
from synthbench.generation.journal import Journal


def make_requests(n: int, tag: str, max_tokens: int = 32) -> list[ChatRequest]:
    return [
        ChatRequest(
            key=f"{tag}-{i:06d}",
            messages=[
                {"role": "system", "content": "You write one short product review."},
                {
                    "role": "user",
                    "content": f"Write a {'positive' if i % 2 else 'negative'} review, variant {i}.",
                },
            ],
            params={"temperature": 0.9, "top_p": 0.95, "max_tokens": max_tokens, "seed": i},
            meta={"task": "bench", "mode": "zero_shot", "index": i},
        )
        for i in range(n)
    ]


def run_chat_client(config: EndpointConfig, requests: list[ChatRequest]) -> tuple[float, dict[str, Any]]:
    """Wall seconds and client stats for answering ``requests`` with a fresh journal."""
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "journal.sqlite") as journal:
        client = ChatClient(config, journal)
        started = time.perf_counter()
        answers = client.run(requests)
        wall = time.perf_counter() - started
        assert len(answers) == len({r.key for r in requests}), "lost answers"
        assert journal.count() == len(answers), "journal incomplete"
        return wall, client.stats.as_dict()


def run_sequential(base_url: str, model: str, requests: list[ChatRequest]) -> float:
    """Wall seconds for a plain loop with the synchronous openai client, one request at a time."""
    api = openai.OpenAI(api_key="sk-local", base_url=base_url, max_retries=5)
    started = time.perf_counter()
    for request in requests:
        api.chat.completions.create(model=model, messages=request.messages, **request.params)
    return time.perf_counter() - started


def loopback_benchmark(args: argparse.Namespace) -> None:
    capacity_rps = args.capacity / args.latency
    rows: list[tuple[str, int, float, float, str]] = []
    retry_after_values: list[str | None] = [None if v == "none" else v for v in args.retry_after.split(",")]
    for retry_after in retry_after_values:
        config = ServerConfig(
            latency_s=args.latency, capacity=args.capacity, overflow_retry_after=retry_after
        )
        with serve(config, in_process=False) as server:
            endpoint = EndpointConfig(
                base_url=server.base_url,
                model="test-model",
                api_key_env=None,
                concurrency=args.concurrency,
                max_retries=30,
                timeout_s=30.0,
            )
            label = "no Retry-After" if retry_after is None else f"Retry-After: {retry_after}"
            wall, stats = run_chat_client(endpoint, make_requests(args.n, tag=f"cc-{retry_after}"))
            server_stats = server.stats()
            assert server_stats["answered"] == args.n == server_stats["fingerprints"], "duplicate answers"
            rows.append(
                (
                    f"ChatClient, concurrency {args.concurrency}, 429 with {label}",
                    args.n,
                    wall,
                    args.n / wall,
                    f"429s {server_stats['rejected_capacity']}, max in service {server_stats['max_in_service']}, "
                    f"limit min/final {stats['concurrency_min']}/{stats['concurrency_final']}",
                )
            )
            if retry_after == retry_after_values[-1]:
                server.reset()
                seq_wall = run_sequential(
                    server.base_url, "test-model", make_requests(args.sequential_n, "seq")
                )
                rows.append(
                    (
                        "sequential openai client loop",
                        args.sequential_n,
                        seq_wall,
                        args.sequential_n / seq_wall,
                        "",
                    )
                )
    sequential_rps = rows[-1][3]

    print(
        f"\nTest server: latency {args.latency * 1000:.0f} ms, {args.capacity} slots (429 beyond) → capacity "
        f"{capacity_rps:.0f} req/s; client CPU: this process, server in a subprocess\n"
    )
    print("| run | requests | wall s | req/s | % of capacity | × sequential | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, n, wall, rps, note in rows:
        print(
            f"| {name} | {n} | {wall:.2f} | {rps:.1f} | {100 * rps / capacity_rps:.1f}% | "
            f"{rps / sequential_rps:.1f}× | {note} |"
        )


def llama_server_benchmark(args: argparse.Namespace) -> None:
    """Generated tokens/s through ChatClient against an already running llama.cpp server."""
    base_url = args.llama_server.rstrip("/")
    model = args.llama_model
    if model is None:
        model = openai.OpenAI(api_key="sk-local", base_url=base_url).models.list().data[0].id
    endpoint = EndpointConfig(
        base_url=base_url,
        model=model,
        api_key_env=None,
        concurrency=args.llama_concurrency,
        timeout_s=600.0,
        max_retries=3,
    )
    requests = make_requests(args.llama_n, tag=f"llama-{time.time_ns()}", max_tokens=args.max_tokens)
    wall, stats = run_chat_client(endpoint, requests)
    print(f"\nllama.cpp server {base_url} (model {model}), concurrency {args.llama_concurrency}\n")
    print(
        "| requests | max_tokens | wall s | req/s | completion tokens | generated tokens/s | prompt tokens |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.llama_n} | {args.max_tokens} | {wall:.1f} | {args.llama_n / wall:.2f} | "
        f"{stats['completion_tokens']} | {stats['completion_tokens'] / wall:.1f} | {stats['prompt_tokens']} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="requests for ChatClient")
    parser.add_argument("--sequential-n", type=int, default=30, help="requests for the sequential baseline")
    parser.add_argument(
        "--concurrency", type=int, default=96, help="ChatClient's upper bound of in-flight requests"
    )
    parser.add_argument("--latency", type=float, default=0.2, help="test server seconds per request")
    parser.add_argument("--capacity", type=int, default=64, help="test server concurrent slots")
    parser.add_argument(
        "--retry-after",
        default="none,1",
        help="comma list of Retry-After values the test server sends on capacity 429s ('none' = no header)",
    )
    parser.add_argument(
        "--llama-server", default=None, metavar="URL", help="measure a running llama.cpp server"
    )
    parser.add_argument("--llama-model", default=None, help="model name (default: the server's first model)")
    parser.add_argument("--llama-n", type=int, default=64)
    parser.add_argument("--llama-concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    if args.llama_server:
        llama_server_benchmark(args)
    else:
        loopback_benchmark(args)


if __name__ == "__main__":
    main()
