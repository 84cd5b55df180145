"""Generation throughput of ChatClient.

Part 1 (default): against the loopback OpenAI-compatible test server (synthbench.testing.openai_server, run in a
subprocess) with 200 ms latency and 64 concurrent slots (429 beyond, with or without Retry-After). Reports
ChatClient's requests/s as a fraction of the server's capacity (64 / 0.2 s = 320 req/s; goal ≥ 90%) and as a
ratio to a plain sequential loop with the openai client measured in the same run (goal ≥ 50×), with the CPU
time per request of the client process and of the server subprocess (client and server share the machine's
cores, so CPU per request is steadier than wall time on a busy machine).

    PYTHONPATH=src .venv/bin/python benchmarks/generation_throughput.py [--n 2000] [--concurrency 96]

Part 2 (``--embedded``): generated tokens/s of the default embedded endpoint (SmolLM2-135M via
``llama_cpp.server``, started as the generate stage starts it) through ChatClient, against llama.cpp's own
single-stream rate: the same GGUF, prompts, sampling params and threads through ``llama_cpp.Llama`` in this
process (no HTTP, no client). Rounds alternate the two so that drift in machine load hits both.

Part 3 (``--llama-server URL``): generated tokens/s through ChatClient against an already running llama.cpp
server (e.g. ``python -m llama_cpp.server --model X.gguf --port 8080`` → ``--llama-server
http://127.0.0.1:8080/v1``). The test server is not used then.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

from synthbench.generation.client import ChatClient, ChatRequest, EndpointConfig
from synthbench.generation.journal import Journal
from synthbench.testing.openai_server import ServerConfig, serve


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


def run_chat_client(
    config: EndpointConfig, requests: list[ChatRequest]
) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds, this process's CPU seconds and client stats for answering ``requests`` (fresh journal)."""
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "journal.sqlite") as journal:
        client = ChatClient(config, journal)
        started, cpu_started = time.perf_counter(), time.process_time()
        answers = client.run(requests)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert len(answers) == len({r.key for r in requests}), "lost answers"
        assert journal.count() == len(answers), "journal incomplete"
        return wall, cpu, client.stats.as_dict()


def run_sequential(base_url: str, model: str, requests: list[ChatRequest]) -> float:
    """Wall seconds for a plain loop with the synchronous openai client, one request at a time."""
    api = openai.OpenAI(api_key="sk-local", base_url=base_url, max_retries=5)
    started = time.perf_counter()
    for request in requests:
        api.chat.completions.create(model=model, messages=request.messages, **request.params)
    return time.perf_counter() - started


def loopback_benchmark(args: argparse.Namespace) -> None:
    capacity_rps = args.capacity / args.latency
    load_before = os.getloadavg()[0]
    scenarios: list[tuple[int, str | None]] = [
        (args.concurrency, None if value == "none" else value) for value in args.retry_after.split(",")
    ]
    if args.concurrency != args.capacity:
        scenarios.append((args.capacity, None))  # reference: exactly the server's slots, so no 429 at all
    rows: list[tuple[str, int, float, float, str]] = []
    for concurrency, retry_after in scenarios:
        config = ServerConfig(
            latency_s=args.latency, capacity=args.capacity, overflow_retry_after=retry_after
        )
        with serve(config, in_process=False) as server:
            server_cpu_started = server.stats()["cpu_s"]
            endpoint = EndpointConfig(
                base_url=server.base_url,
                model="test-model",
                api_key_env=None,
                concurrency=concurrency,
                max_retries=30,
                timeout_s=30.0,
            )
            wall, cpu, stats = run_chat_client(
                endpoint, make_requests(args.n, tag=f"c{concurrency}-{retry_after}")
            )
            answered = server.stats()
            server_cpu = answered["cpu_s"] - server_cpu_started
            assert answered["answered"] == args.n == answered["fingerprints"], "duplicate answers"
            header = "no Retry-After" if retry_after is None else f"Retry-After: {retry_after}"
            rows.append(
                (
                    f"ChatClient, concurrency {concurrency}, 429s with {header}",
                    args.n,
                    wall,
                    args.n / wall,
                    f"429s {answered['rejected_capacity']}, limit min/final "
                    f"{stats['concurrency_min']}/{stats['concurrency_final']}, "
                    f"client CPU {1000 * cpu / args.n:.2f} ms/request, "
                    f"server CPU {1000 * server_cpu / args.n:.2f} ms/request",
                )
            )
    with serve(ServerConfig(latency_s=args.latency, capacity=args.capacity), in_process=False) as server:
        seq_wall = run_sequential(server.base_url, "test-model", make_requests(args.sequential_n, "seq"))
    sequential_rps = args.sequential_n / seq_wall
    rows.append(("sequential loop, openai client", args.sequential_n, seq_wall, sequential_rps, ""))

    print(
        f"\nTest server: latency {args.latency * 1000:.0f} ms, {args.capacity} slots (429 beyond) → capacity "
        f"{capacity_rps:.0f} req/s. Server in a subprocess; {os.cpu_count()} CPUs, load average before the "
        f"run {load_before:.2f}\n"
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
    wall, _cpu, stats = run_chat_client(endpoint, requests)
    print(f"\nllama.cpp server {base_url} (model {model}), concurrency {args.llama_concurrency}\n")
    print(
        "| requests | max_tokens | wall s | req/s | completion tokens | generated tokens/s | prompt tokens |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.llama_n} | {args.max_tokens} | {wall:.1f} | {args.llama_n / wall:.2f} | "
        f"{stats['completion_tokens']} | {stats['completion_tokens'] / wall:.1f} | {stats['prompt_tokens']} |"
    )


def direct_llama(model_path: Path, requests: list[ChatRequest], n_ctx: int) -> tuple[float, int, int]:
    """Wall seconds, completion tokens and prompt tokens answering ``requests`` one after another with
    ``llama_cpp.Llama`` in this process (llama.cpp's own single-stream rate: no server, no HTTP)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=os.cpu_count() or 1, verbose=False)
    completion = prompt = 0
    started = time.perf_counter()
    for request in requests:
        usage = llm.create_chat_completion(messages=request.messages, **request.params)["usage"]
        completion, prompt = completion + usage["completion_tokens"], prompt + usage["prompt_tokens"]
    wall = time.perf_counter() - started
    llm.close()
    return wall, completion, prompt


def embedded_benchmark(args: argparse.Namespace) -> None:
    """ChatClient → embedded llama.cpp server vs llama.cpp in-process, same prompts, alternating rounds."""
    from synthbench.assets import embedded_gguf_path
    from synthbench.config import EndpointParams
    from synthbench.generation.server import embedded_server

    model_path, defaults = embedded_gguf_path(), EndpointParams()
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, int, float, int, int]] = []
    for round_index in range(args.rounds):
        requests = make_requests(args.llama_n, tag=f"embedded-{round_index}", max_tokens=args.max_tokens)
        with embedded_server(model_path, alias=defaults.model, n_ctx=defaults.n_ctx) as base_url:
            endpoint = EndpointConfig(
                base_url=base_url,
                model=defaults.model,
                api_key_env=None,
                concurrency=defaults.concurrency,
                timeout_s=600.0,
                max_retries=3,
            )
            wall, _cpu, stats = run_chat_client(endpoint, requests)
        rows.append(
            (
                f"ChatClient → embedded llama.cpp server (round {round_index + 1})",
                len(requests),
                wall,
                stats["completion_tokens"],
                stats["prompt_tokens"],
            )
        )
        wall, completion, prompt = direct_llama(model_path, requests, defaults.n_ctx)
        rows.append(
            (
                f"llama.cpp in-process, one stream (round {round_index + 1})",
                len(requests),
                wall,
                completion,
                prompt,
            )
        )
    print(
        f"\nSmolLM2-135M-Instruct (Q4_1 GGUF), n_ctx {defaults.n_ctx}, {os.cpu_count()} threads, max_tokens "
        f"{args.max_tokens}, temperature 0.9; load average before: {load_before:.2f}\n"
    )
    print("| run | requests | wall s | completion tokens | generated tokens/s | prompt tokens |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, wall, completion, prompt in rows:
        print(f"| {name} | {n} | {wall:.1f} | {completion} | {completion / wall:.1f} | {prompt} |")
    served = sum(r[3] for r in rows[0::2]) / sum(r[2] for r in rows[0::2])
    direct = sum(r[3] for r in rows[1::2]) / sum(r[2] for r in rows[1::2])
    print(
        f"\nall rounds: served {served:.1f} tokens/s, in-process {direct:.1f} tokens/s → "
        f"{served / direct:.2f}× llama.cpp's own single-stream rate"
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
    parser.add_argument("--embedded", action="store_true", help="embedded server vs llama.cpp in-process")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds for --embedded")
    args = parser.parse_args(argv)
    if args.embedded:
        embedded_benchmark(args)
    elif args.llama_server:
        llama_server_benchmark(args)
    else:
        loopback_benchmark(args)


if __name__ == "__main__":
    main()
