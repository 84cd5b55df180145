"""The generation loop: requests planned in rounds per label (the diversity prompt of a round quotes texts
accepted in earlier rounds), answered through the journaled client, filtered in plan order, repeated until each
label has ``per_label`` accepted texts or reaches its attempt bound.

A round is ``diversity_every`` requests per label, at most ``MAX_ROUND`` (also when the diversity prompt is off):
planning never runs ahead of sending, whatever ``per_label`` is.

In batch mode (``generate.endpoint.mode: batch``) a round is each label's whole remaining need: one Batch API job
(split at 50,000 lines) per round, since every round waits for its batch (up to 24 h). The first batch therefore
carries no diversity prompt (nothing is accepted yet to quote); the top-up batches for rejected answers quote the
texts accepted so far, as online rounds do."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from synthbench.config import GenerateParams
from synthbench.generation.client import ChatRequest
from synthbench.generation.consistency import REJECT_LABEL_INCONSISTENT, LabelConsistency
from synthbench.generation.filters import QualityFilter
from synthbench.generation.journal import Completion
from synthbench.generation.progress import ProgressWatch
from synthbench.generation.requests import OnResult
from synthbench.generation.strategies import GenerationStrategy, SampleSlot, request_key
from synthbench.generation.structured import JSON_OVERHEAD_TOKENS, response_format
from synthbench.tasks.spec import TaskSpec

MAX_ROUND = 1024  # requests per label per round


@dataclass
class Plan:
    """What to ask for one (task, mode): sampling params, the model identity in keys, the per-label target."""

    task: str
    mode: str
    spec: TaskSpec
    strategy: GenerationStrategy
    model_id: str
    sampling: dict[str, Any]
    per_label: int
    attempt_cap: int  # requests per label before giving up on it
    round_size: int
    response_format: dict[str, Any] | None = None  # structured output: sent with (and keying) every request

    @classmethod
    def build(
        cls,
        task: str,
        mode: str,
        spec: TaskSpec,
        strategy: GenerationStrategy,
        model_id: str,
        generate: GenerateParams,
        *,
        batch: bool = False,
    ) -> Plan:
        length = spec.prompt.length_words
        structured = response_format(spec, generate.endpoint)
        # ~1.3 tokens per English word; small models overrun word limits, so the token cap bounds cost. A JSON
        # answer spends a few more on its wrapper: cut short, it would not parse.
        default_tokens = math.ceil(1.5 * length) + (JSON_OVERHEAD_TOKENS if structured is not None else 0)
        sampling = {
            "temperature": generate.temperature,
            "top_p": generate.top_p,
            "max_tokens": generate.max_tokens or default_tokens,
        }
        every = generate.diversity_every
        return cls(
            task,
            mode,
            spec,
            strategy,
            model_id,
            sampling,
            generate.per_label,
            math.ceil(generate.per_label * generate.max_attempts_factor),
            generate.per_label if batch else min(every if every > 0 else generate.per_label, MAX_ROUND),
            structured,
        )

    def request(self, slot: SampleSlot, previous: list[str]) -> ChatRequest:
        messages = self.strategy.messages(slot, previous)
        sampling = {**self.sampling, "seed": self.strategy.request_seed(slot)}
        key = request_key(self.task, self.mode, slot, self.model_id, sampling, messages, self.response_format)
        params = (
            sampling
            if self.response_format is None
            else {**sampling, "response_format": self.response_format}
        )
        meta = {
            "task": self.task,
            "mode": self.mode,
            "label": slot.label,
            "index": slot.index,
            "model": self.model_id,
        }
        return ChatRequest(key=key, messages=messages, params=params, meta=meta)


@dataclass
class _Round:
    """One label's round of the full run: its attempts end before index ``end``; its requests quote
    ``previous`` (the texts accepted when it began)."""

    end: int
    previous: list[str]


@dataclass
class Outcome:
    """Accepted rows per label (plan order), attempts per label, rejections by reason (overall, per label)."""

    accepted: dict[str, list[dict[str, Any]]]
    attempts: dict[str, int]
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_per_label: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for rows in self.accepted.values() for row in rows]

    def short_labels(self, per_label: int) -> list[str]:
        return [label for label, rows in self.accepted.items() if len(rows) < per_label]


class Answerer(Protocol):
    """What answers a round: the online ``ChatClient`` or the Batch API's ``BatchRunner``."""

    def run(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> dict[str, Completion]: ...


def prefix_order(requests: Sequence[ChatRequest]) -> list[ChatRequest]:
    """The requests in the order to send them: those sharing a prompt prefix (system prompt, then the user
    prompt's text: instructions, label, style, few-shot examples) next to each other, so a server that keeps a
    slot's prompt cache (llama-server, vLLM's prefix caching) reads the shared part once. Answers are still
    filtered in plan order: the dataset does not depend on this order."""
    return sorted(requests, key=lambda r: [m.get("content", "") for m in r.messages])


def collect(
    plan: Plan,
    client: Answerer,
    quality: QualityFilter,
    watch: ProgressWatch | None = None,
    *,
    until: Callable[[Outcome], bool] | None = None,
    consistency: LabelConsistency | None = None,
    want_per_label: int | None = None,
) -> Outcome:
    """Run rounds until every label is full or out of attempts. ``watch`` sees each answer as it arrives (and
    may stop the stage early) and the accepted count after each round. ``until`` (the pilot's) stops before a
    round once it holds: the rounds sent are then exactly the first rounds of the full run (same indices, same
    quoted texts, so the same journal keys), and the full run later re-asks none of them. ``consistency`` (when
    ``generate.label_consistency_threshold`` is set) reads each round's answers in one batch and rejects those
    whose intended label its oracle rejects. ``want_per_label`` (the pilot's rows per label) asks no more of a
    round than a label still lacks: the rest of that round, if needed, follows in smaller sends with the same
    quoted texts, so every request sent is still one of the full run's, and no label is asked a whole round
    for the one row a rejection cost it."""
    labels = plan.spec.label_names
    out = Outcome({label: [] for label in labels}, dict.fromkeys(labels, 0))
    out.rejected_per_label = {label: Counter() for label in labels}
    rounds = {label: _Round(0, []) for label in labels}  # each label's current round of the full run
    while until is None or not until(out):
        batch: list[tuple[SampleSlot, ChatRequest]] = []
        for label in labels:
            current = rounds[label]
            if out.attempts[label] >= current.end:  # the next round: it quotes what is accepted so far
                need = plan.per_label - len(out.accepted[label])
                room = plan.attempt_cap - out.attempts[label]
                slots = max(0, min(need, room, plan.round_size))
                current = rounds[label] = _Round(
                    out.attempts[label] + slots, [row["text"] for row in out.accepted[label]]
                )
            ask = current.end - out.attempts[label]
            if want_per_label is not None:
                ask = min(ask, max(0, want_per_label - len(out.accepted[label])))
            for _ in range(ask):
                slot = SampleSlot(label, out.attempts[label])
                out.attempts[label] += 1
                batch.append((slot, plan.request(slot, current.previous)))
        if not batch:
            return out
        answers = client.run(
            prefix_order([request for _, request in batch]), watch.on_result if watch else None
        )
        # Accept in plan order, not arrival order: the dataset must not depend on network timing.
        inconsistent = _inconsistent(consistency, quality, batch, answers) if consistency else set()
        checked: list[tuple[str | None, str | None]] = []
        for i, (slot, request) in enumerate(batch):
            if i in inconsistent:
                checked.append((None, REJECT_LABEL_INCONSISTENT))
                continue
            # The real texts the prompt showed: copying one is rejected.
            examples = plan.strategy.shown_texts(slot)
            answer = answers[request.key]
            checked.append(quality.check(answer.text, examples=examples, finish_reason=answer.finish_reason))
        for (slot, request), (text, reason) in zip(batch, checked, strict=True):
            if reason is not None:
                out.rejected[reason] += 1
                out.rejected_per_label[slot.label][reason] += 1
            elif len(out.accepted[slot.label]) < plan.per_label:
                out.accepted[slot.label].append(
                    {
                        "text": text,
                        "label": slot.label,
                        "mode": plan.mode,
                        "model": plan.model_id,
                        "prompt_id": plan.strategy.template_id(),
                        "seed": request.params["seed"],
                        "sample_index": slot.index,
                        "request_key": request.key,
                        **plan.strategy.provenance(slot),
                    }
                )
        if watch is not None:
            watch.round_done(len(out.rows))
    return out


def _inconsistent(
    consistency: LabelConsistency,
    quality: QualityFilter,
    batch: list[tuple[SampleSlot, ChatRequest]],
    answers: dict[str, Completion],
) -> set[int]:
    """Positions in ``batch`` whose answer (cleaned, if it passes the per-answer checks) the oracle reads as
    another label: one embedding batch per round. This runs before the duplicate checks, so a rejected text
    never enters their index (where it would block an equal text generated for the label it does fit)."""
    cleaned = [
        quality.precheck(answers[r.key].text, finish_reason=answers[r.key].finish_reason) for _, r in batch
    ]
    usable = [i for i, (text, _) in enumerate(cleaned) if text is not None]
    verdicts = consistency.rejects([str(cleaned[i][0]) for i in usable], [batch[i][0].label for i in usable])
    return {i for i, rejected in zip(usable, verdicts, strict=True) if rejected}
