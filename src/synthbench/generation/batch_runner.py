"""The Batch API as the generate stage's answerer (``generate.endpoint.mode: batch``): the same
``run(requests) → key → answer`` as the online :class:`~synthbench.generation.client.ChatClient`, so the rounds,
the filter and the written dataset are exactly the online ones.

One call of ``run`` (one round of the plan) submits the requests the journal lacks as Batch API jobs of at most
``MAX_BATCH_REQUESTS`` lines (split in plan order, so a re-run forms the same chunks, hence the same key sets,
and finds the jobs already submitted: nothing is uploaded or paid twice), waits for them with a progress line,
polling with backoff (``poll_s`` × 1.5 per poll, at most ``MAX_POLL_S``), and journals their output at the batch
price. With ``wait`` false a job still running is a :class:`BatchPending` error: the stage exits non-zero and a
later ``dvc repro`` resumes the same job. Lines the endpoint failed are submitted again (at most
``MAX_RESUBMITS`` times)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import openai

from synthbench.errors import BatchPending, EndpointError
from synthbench.generation.batch import (
    BATCH_DISCOUNT,
    MAX_BATCH_REQUESTS,
    make_client,
    poll_batch,
    submit_batch,
)
from synthbench.generation.batch_store import BatchStore
from synthbench.generation.cost import cost_usd
from synthbench.generation.endpoint import EndpointConfig
from synthbench.generation.journal import Completion, Journal
from synthbench.generation.requests import ChatRequest, ClientStats, OnResult

MAX_POLL_S = 600.0  # the longest pause between two polls (a batch may take up to 24 h)
MAX_RESUBMITS = 2  # lines that came back failed are submitted again this many times, then the stage fails


@dataclass
class BatchStats(ClientStats):
    """``ClientStats`` of a batch-mode run; tokens and ``cost_usd`` count fresh answers at the batch price."""

    price_factor: float = BATCH_DISCOUNT  # of the synchronous price per token
    batch_ids: list[str] = field(default_factory=list)  # every job this run waited for (resumed or submitted)
    batches_submitted: int = 0  # of them: jobs this run created (0 on a resume)
    polls: int = 0


class BatchRunner:
    """Answers ``ChatRequest``s from the journal, else through Batch API jobs (see the module doc)."""

    def __init__(
        self,
        config: EndpointConfig,
        journal: Journal,
        workdir: str | Path,
        *,
        wait: bool = True,
        poll_s: float = 30.0,
        say: Callable[[str], None] = lambda line: None,
        sleep: Callable[[float], None] = time.sleep,
        chunk_size: int = MAX_BATCH_REQUESTS,
    ) -> None:
        self.config = config
        self.journal = journal
        self.workdir = Path(workdir)
        self.wait = wait
        self.poll_s = poll_s
        self.say = say
        self.sleep = sleep
        self.chunk_size = min(chunk_size, MAX_BATCH_REQUESTS)
        self.stats = BatchStats()
        self._api: openai.OpenAI | None = None

    def __repr__(self) -> str:  # never the key
        return f"BatchRunner(endpoint={self.config.endpoint!r}, model={self.config.model!r})"

    @property
    def api(self) -> openai.OpenAI:
        if self._api is None:
            self._api = make_client(self.config)
        return self._api

    def run(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> dict[str, Completion]:
        """key → answer for every request: journaled ones at once, the rest after their batch jobs end."""
        started = time.monotonic()
        unique: dict[str, ChatRequest] = {}
        for request in requests:
            unique.setdefault(request.key, request)
        self.stats.requested += len(unique)
        had = self.journal.get_many(list(unique))
        for key, completion in had.items():
            self.stats.cached += 1
            if on_result is not None:
                on_result(unique[key], completion, True)
        ordered = list(unique.values())
        chunks = [ordered[i : i + self.chunk_size] for i in range(0, len(ordered), self.chunk_size)]
        try:
            for attempt in range(MAX_RESUBMITS + 1):
                if len(self.journal.get_many(list(unique))) == len(unique):
                    break
                if attempt:
                    self.say(
                        f"batch: resubmitting {len(unique) - len(self.journal.get_many(list(unique)))} lines "
                        "the endpoint failed"
                    )
                self._wait_for([self._submit(chunk) for chunk in chunks])
            answers = self.journal.get_many(list(unique))
        finally:
            self.stats.wall_s += time.monotonic() - started
        missing = len(unique) - len(answers)
        if missing:
            raise EndpointError(
                f"{self.config.endpoint} (model {self.config.model}): {missing} batch lines failed "
                f"{MAX_RESUBMITS + 1} times; check the batch error files on the endpoint, then re-run to resume"
            )
        for key, completion in answers.items():
            if key in had:
                continue
            self.stats.fresh += 1
            self.stats.prompt_tokens += completion.prompt_tokens
            self.stats.completion_tokens += completion.completion_tokens
            self.stats.cost_usd += cost_usd(
                completion.prompt_tokens, completion.completion_tokens, self.config, discount=BATCH_DISCOUNT
            )
            if completion.finish_reason and completion.finish_reason.startswith("unusable:"):
                self.stats.unusable += 1
            if on_result is not None:
                on_result(unique[key], completion, False)
        return answers

    def _submit(self, chunk: list[ChatRequest]) -> str:
        """The job for ``chunk``'s key set: the one already journaled while it runs, else a new one ("" when
        the journal has every answer)."""
        store = BatchStore(self.journal)
        before = {job.id for job in store.jobs()}
        batch_id = submit_batch(self.config, chunk, self.journal, self.workdir, client=self.api)
        if batch_id and batch_id not in before:
            self.stats.batches_submitted += 1
            self.say(f"batch {batch_id} submitted: {store.get(batch_id).n_requests} requests")  # type: ignore[union-attr]
        elif batch_id:
            self.say(f"batch {batch_id}: resuming (submitted by an earlier run)")
        return batch_id

    def _wait_for(self, batch_ids: list[str]) -> None:
        """Poll until every job has ended and is ingested (or raise BatchPending when not waiting)."""
        store = BatchStore(self.journal)
        pending = [i for i in dict.fromkeys(batch_ids) if i and not store.get(i).ingested]  # type: ignore[union-attr]
        self.stats.batch_ids.extend(i for i in pending if i not in self.stats.batch_ids)
        delay = self.poll_s
        while pending:
            still: list[str] = []
            done = total = 0
            state = ""
            for batch_id in pending:
                status = poll_batch(self.config, self.journal, batch_id, client=self.api)
                self.stats.polls += 1
                job = store.get(batch_id)
                total += max(status.total, job.n_requests if job else 0)
                done += status.completed + status.failed
                if not status.done:
                    still.append(batch_id)
                    state = state or status.status
            pending = still
            if not pending:
                return
            named = pending[0] if len(pending) == 1 else f"{pending[0]} (+{len(pending) - 1} more)"
            line = f"batch {named} pending: {done}/{total} done"
            if not self.wait:
                raise BatchPending(f"{line}; re-run `dvc repro` later")
            self.say(f"{line} ({state}); next poll in {delay:.0f} s")
            self.sleep(delay)
            delay = min(delay * 1.5, MAX_POLL_S)
