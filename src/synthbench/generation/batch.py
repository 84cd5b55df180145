"""OpenAI Batch API mode: the same requests at half price, answered within 24 h instead of now.

``submit_batch`` writes the requests the journal lacks as a batch JSONL (``custom_id`` = journal key), uploads
it (``files.create(purpose="batch")``), creates the batch and persists its id in the journal before returning.
Submitting the same key set again while that batch is pending returns the persisted id: nothing is uploaded
twice. ``poll_batch`` asks for the batch's status and, once it has ended, downloads its output and journals
every answer (keys already journaled are skipped; failed lines are counted, and a later ``submit_batch``
sends just those again).

Typical use from the generate stage, run after run until done::

    batch_id = submit_batch(config, requests, journal, workdir)
    status = poll_batch(config, journal, batch_id)
    if not status.done: ...  # "batch <id> is <status>; re-run later"
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from synthbench.data.io import stable_hash, write_jsonl
from synthbench.errors import BudgetExceeded, ConfigError, EndpointError
from synthbench.generation.batch_store import BatchStore
from synthbench.generation.client import ChatRequest
from synthbench.generation.cost import cost_usd, worst_case_cost
from synthbench.generation.endpoint import EndpointConfig, chat_body, fatal_error_message, resolve_api_key
from synthbench.generation.journal import Journal
from synthbench.generation.responses import UnusableResponse, classify_error, completion_from_response

BATCH_DISCOUNT = 0.5  # Batch API tokens cost half the synchronous price
BATCH_ENDPOINT = "/v1/chat/completions"
MAX_BATCH_REQUESTS = 50_000  # the Batch API's per-file limit
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class BatchStatus:
    """A batch job after one poll. ``ingested``: answers this poll added to the journal; ``errors``: lines
    that came back without a usable answer (their keys stay missing, so the next submit retries them)."""

    batch_id: str
    status: str  # the Batch API's: validating, in_progress, finalizing, completed, failed, expired, …
    total: int
    completed: int
    failed: int
    ingested: int
    errors: int

    @property
    def done(self) -> bool:
        return self.status in ENDED


def make_client(config: EndpointConfig) -> openai.OpenAI:
    """A synchronous SDK client for ``config`` (its own retries are fine here: file and batch calls are
    idempotent reads or single creations)."""
    return openai.OpenAI(
        api_key=resolve_api_key(config), base_url=config.url, timeout=config.timeout_s, max_retries=2
    )


def keyset_id(keys: Sequence[str]) -> str:
    """Content address of a set of request keys (order and duplicates do not matter)."""
    return stable_hash(sorted(set(keys)))


def submit_batch(
    config: EndpointConfig,
    requests: Sequence[ChatRequest],
    journal: Journal,
    workdir: str | Path,
    *,
    client: openai.OpenAI | None = None,
) -> str:
    """Submit the requests the journal lacks as one Batch API job; return its id ("" when nothing is missing
    and no batch was ever submitted for this key set).

    Idempotent: while a batch for the same key set is pending or not yet ingested, its persisted id is
    returned without any upload. Raises ``BudgetExceeded`` when the batch's worst-case cost (at the batch
    discount) exceeds ``config.budget_usd``."""
    unique: dict[str, ChatRequest] = {}
    for request in requests:
        unique.setdefault(request.key, request)
    keyset = keyset_id(list(unique))
    previous = BatchStore(journal).find(keyset)
    if previous is not None and (previous.status not in ENDED or not previous.ingested):
        return previous.id
    have = journal.get_many(list(unique))
    missing = [request for key, request in unique.items() if key not in have]
    if not missing:
        return previous.id if previous is not None else ""
    if len(missing) > MAX_BATCH_REQUESTS:
        raise ConfigError(
            f"{len(missing)} requests exceed the Batch API's {MAX_BATCH_REQUESTS} per batch; generate fewer "
            "samples per run or use the synchronous mode"
        )
    worst = sum(worst_case_cost(request, config, discount=BATCH_DISCOUNT) for request in missing)
    if config.budget_usd is not None and worst > config.budget_usd:
        raise BudgetExceeded(
            f"batch of {len(missing)} requests could cost up to ${worst:.4f} (at the batch discount), over "
            f"the ${config.budget_usd:.4f} budget; raise generate.budget_usd or generate fewer samples"
        )
    api = client or make_client(config)
    lines = [
        {
            "custom_id": request.key,
            "method": "POST",
            "url": BATCH_ENDPOINT,
            "body": chat_body(config, request),
        }
        for request in missing
    ]
    path = Path(workdir) / f"batch-{keyset[:16]}-{len(missing)}.jsonl"
    write_jsonl(path, lines)
    try:
        with path.open("rb") as handle:
            uploaded = api.files.create(file=handle, purpose="batch")
        # not retried by the SDK: a retried create after a lost answer could start (and bill) a second batch
        batch = api.with_options(max_retries=0).batches.create(
            input_file_id=uploaded.id,
            endpoint=BATCH_ENDPOINT,
            completion_window="24h",
            metadata={"synthbench_keyset": keyset[:64]},
        )
    except openai.OpenAIError as exc:
        raise _endpoint_error(config, exc, "submitting a batch") from None
    BatchStore(journal).save(
        batch.id,
        keyset=keyset,
        input_file_id=uploaded.id,
        status=batch.status,
        requests_meta={request.key: request.meta for request in missing},
    )
    return batch.id


def poll_batch(
    config: EndpointConfig, journal: Journal, batch_id: str, *, client: openai.OpenAI | None = None
) -> BatchStatus:
    """Ask for the batch's status; once it has ended, journal every answer in its output (once)."""
    job = BatchStore(journal).get(batch_id)
    if job is None:
        raise EndpointError(
            f"batch {batch_id} is not in the journal {journal.path}; submit it with submit_batch() first"
        )
    api = client or make_client(config)
    try:
        batch = api.batches.retrieve(batch_id)
    except openai.OpenAIError as exc:
        raise _endpoint_error(config, exc, f"polling batch {batch_id}") from None
    counts = batch.request_counts
    total = int(getattr(counts, "total", 0) or 0)
    completed = int(getattr(counts, "completed", 0) or 0)
    failed = int(getattr(counts, "failed", 0) or 0)
    if batch.status not in ENDED or job.ingested:
        BatchStore(journal).update(batch_id, status=batch.status)
        return BatchStatus(
            batch_id, batch.status, total, completed, failed, 0, job.n_errors if job.ingested else 0
        )

    ingested = errors = 0
    meta_by_key = BatchStore(journal).request_meta(batch_id)
    try:
        if batch.output_file_id:
            output = api.files.content(batch.output_file_id).text
            added, bad = _ingest(config, journal, batch_id, output, meta_by_key)
            ingested += added
            errors += bad
        if batch.error_file_id:
            errors += sum(
                1 for line in api.files.content(batch.error_file_id).text.splitlines() if line.strip()
            )
    except openai.OpenAIError as exc:
        raise _endpoint_error(config, exc, f"downloading the output of batch {batch_id}") from None
    BatchStore(journal).update(
        batch_id,
        status=batch.status,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        ingested=True,
        n_errors=errors,
    )
    return BatchStatus(batch_id, batch.status, total, completed, failed, ingested, errors)


def _ingest(
    config: EndpointConfig,
    journal: Journal,
    batch_id: str,
    output: str,
    meta_by_key: dict[str, dict[str, Any]],
) -> tuple[int, int]:
    """Journal the answers in a batch output file; return (added, unusable lines)."""
    parsed: list[tuple[str, dict[str, Any]]] = []
    errors = 0
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            key = item["custom_id"]
            response = item.get("response") or {}
            if item.get("error") or response.get("status_code") != 200 or key not in meta_by_key:
                errors += 1
                continue
            parsed.append((key, response["body"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            errors += 1
    have = journal.get_many([key for key, _ in parsed])
    added = 0
    for key, body in parsed:
        if key in have:
            continue
        try:
            completion = completion_from_response(body, 0.0, config.model)
        except UnusableResponse:
            errors += 1
            continue
        cost = cost_usd(
            completion.prompt_tokens, completion.completion_tokens, config, discount=BATCH_DISCOUNT
        )
        meta = {**meta_by_key[key], "cost_usd": cost, "batch_id": batch_id}
        meta.setdefault("model", config.model)
        journal.record(key, completion, meta=meta)
        have[key] = completion
        added += 1
    return added, errors


def _endpoint_error(config: EndpointConfig, exc: openai.OpenAIError, doing: str) -> EndpointError:
    failure = classify_error(exc)
    if failure is not None and failure.status is not None and not failure.retryable:
        return EndpointError(fatal_error_message(config, failure.status, exc))
    reason = failure.reason if failure is not None else type(exc).__name__
    return EndpointError(
        f"{config.endpoint}: {doing} failed ({reason}); check the endpoint, then re-run to resume (the "
        "journal keeps the batch id)"
    )
