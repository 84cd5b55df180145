"""How much of each generation request's prompt a slot's prompt cache can reuse (issue 10).

For the default study's tasks and modes: one generate round (``diversity_every`` requests per label, the first
round, so no diversity prompt yet) in the stage's send order (:func:`synthbench.generation.rounds.prefix_order`),
tokenized with the embedded model's own tokenizer; per request, the prompt tokens it shares with the request sent
just before it (what llama-server's slot cache or vLLM's prefix cache can skip). The ratio column is shared /
total. CPU-light: no model is run, only its vocabulary is loaded.

    PYTHONPATH=src .venv/bin/python benchmarks/prompt_sharing.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from llama_cpp import Llama

from engine_throughput import real_by_label  # benchmarks/ is on sys.path when run as a script
from synthbench.assets import embedded_gguf_path
from synthbench.config import load_params
from synthbench.generation.client import ChatRequest
from synthbench.generation.modes import strategy_from_params
from synthbench.generation.rounds import Plan, prefix_order
from synthbench.generation.strategies import SampleSlot
from synthbench.tasks.registry import load_task


def shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(Path(args.params))
    gen = params.generate
    vocab = Llama(str(embedded_gguf_path()), vocab_only=True, verbose=False)

    def tokens(request: ChatRequest) -> list[int]:
        # The roles' markers stand in for the chat template's: the same for every request, so they only shift
        # both counts by the same few tokens.
        text = "".join(f"<|{m['role']}|>{m['content']}" for m in request.messages)
        return vocab.tokenize(text.encode(), add_bos=False, special=False)

    print("| task | mode | requests | prompt tokens / request | shared with the previous | ratio |")
    print("|---|---|---|---|---|---|")
    for task in params.tasks:
        spec = load_task(task, params.custom_tasks)
        by_label = real_by_label(spec)
        for mode in params.modes:
            strategy = strategy_from_params(mode, spec, params.seed, gen, by_label)
            plan = Plan.build(task, mode, spec, strategy, "bench", gen)
            round_ = [
                plan.request(SampleSlot(label, i), [])
                for label in spec.label_names
                for i in range(gen.diversity_every)
            ]
            sent = [tokens(r) for r in prefix_order(round_)]
            total = sum(map(len, sent)) / len(sent)
            shared = sum(shared_prefix(a, b) for a, b in itertools.pairwise(sent)) / (len(sent) - 1)
            print(f"| {task} | {mode} | {len(sent)} | {total:.0f} | {shared:.0f} | {shared / total:.2f} |")


if __name__ == "__main__":
    main()
