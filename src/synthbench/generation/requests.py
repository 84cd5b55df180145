"""What the client passes around: a chat request (journal key, messages, sampling params, meta), the answers
of one call on their way to the journal, and the statistics of a client's calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from synthbench.generation.journal import Completion

OnResult = Callable[["ChatRequest", Completion, bool], None]


@dataclass(frozen=True)
class ChatRequest:
    key: str  # journal key, computed by the caller
    messages: list[dict[str, str]]
    params: dict[str, Any]  # temperature, top_p, max_tokens, seed …, passed to chat.completions.create
    meta: dict[str, Any]  # stored in the journal with the answer


@dataclass
class ClientStats:
    """What a ``ChatClient`` did, summed over its calls. Tokens and cost count fresh answers only."""

    requested: int = 0  # distinct keys asked for
    cached: int = 0  # answered from the journal, no call (also: answers another process journaled)
    fresh: int = 0  # answered by the endpoint and journaled in this run
    unusable: int = 0  # of them: 200s without a usable completion (journaled, never re-sent)
    waited_for_others: int = 0  # keys another live process was asking for; their answers were awaited
    calls_made: int = 0  # HTTP requests sent, retries included
    retries: dict[str, int] = field(default_factory=dict)  # reason → retries (http_429, timeout, …)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    backoff_s: float = 0.0  # summed waits before retries (Retry-After included)
    concurrency_min: int = 0  # lowest adaptive in-flight limit reached
    concurrency_final: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outbox:
    """Fresh answers of one call on their way out: those arriving in one event-loop turn wait in ``pending``
    until the next turn commits them in one transaction, then each is handed on."""

    results: dict[str, Completion]
    on_result: OnResult | None
    pending: list[tuple[ChatRequest, Completion, dict[str, Any], float]] = field(default_factory=list)
