"""Progress a person can trust: the generate stage's bar advances as answers arrive (answers, accepted,
rejected by reason, rate, ETA), and a stage whose first answers are nearly all rejected stops early with one
line naming the top reason and the fix, instead of spending ``max_attempts_factor`` × the budget.

Each answer is checked on its own as it arrives (:meth:`QualityFilter.precheck`: empty, too short/long,
refusal, JSON or label echo, unusable); the dataset's own filter still runs in plan order after each round
(duplicates need the texts accepted before), and its count replaces the estimate when the round ends.
:class:`Tally` is pure (times are passed in); :class:`ProgressWatch` binds it to a rich bar and a filter."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from synthbench.errors import MostlyRejected
from synthbench.generation.filters import (
    REJECT_EMPTY,
    REJECT_FORMAT,
    REJECT_INVALID_TEXT,
    REJECT_NOT_STRUCTURED,
    REJECT_REFUSAL,
    REJECT_STRUCTURED,
    REJECT_TOO_LONG,
    REJECT_TOO_SHORT,
    REJECT_UNUSABLE,
    QualityFilter,
)
from synthbench.generation.journal import Completion
from synthbench.generation.requests import ChatRequest

EARLY_ANSWERS = 20  # answers seen before the early stop may judge
EARLY_REJECTED_SHARE = 0.9  # … and at least this share of them rejected on their own

FIXES = {
    REJECT_TOO_SHORT: "lower generate.min_words, or ask for longer texts in the task prompt (prompt.length_words)",
    REJECT_TOO_LONG: "raise generate.max_words (or lower generate.max_tokens), or ask for shorter texts in the "
    "task prompt",
    REJECT_REFUSAL: "reword the task prompt (prompt.context / prompt.generation) so the model writes the text "
    "instead of refusing or commenting",
    REJECT_STRUCTURED: "ask for plain text in the task prompt (no JSON, no label): 'Output only the text.'",
    REJECT_EMPTY: "check generate.max_tokens and the model (it answered nothing usable)",
    REJECT_UNUSABLE: "check the endpoint and generate.endpoint.model (its answers carry no completion)",
    REJECT_INVALID_TEXT: "check the model and its sampling params (its answers hold control characters)",
    REJECT_FORMAT: "set generate.endpoint.structured_output: true (an endpoint that honours response_format then "
    "writes the markers), or reword text_format.instruction in the task spec",
    REJECT_NOT_STRUCTURED: "the endpoint ignores response_format json_schema, or its JSON was cut short (raise "
    "generate.max_tokens); else set generate.endpoint.structured_output: false",
}


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class Tally:
    """Counts of one stage's answers as they arrive. ``target``: rows wanted (per_label × labels);
    ``attempt_cap``: answers the plan may ask for at most; times are ``time.monotonic()`` seconds."""

    target: int
    attempt_cap: int
    started: float
    answers: int = 0
    passing: int = 0  # answers that passed the per-answer checks
    rejected: Counter[str] = field(default_factory=Counter)
    accepted: int = 0  # rows the dataset's filter accepted, as of the last finished round
    _passing_at_round: int = 0  # ``passing`` when ``accepted`` was last set

    def answer(self, reason: str | None) -> None:
        """One answer arrived; ``reason``: its per-answer rejection reason, or None when it passed."""
        self.answers += 1
        if reason is None:
            self.passing += 1
        else:
            self.rejected[reason] += 1

    def round_done(self, accepted: int) -> None:
        """The dataset's filter has accepted ``accepted`` rows in all so far (duplicates removed)."""
        self.accepted = accepted
        self._passing_at_round = self.passing

    @property
    def accepted_estimate(self) -> int:
        """Rows accepted as of the last round plus answers since then that passed on their own."""
        return min(self.target, self.accepted + self.passing - self._passing_at_round)

    def rate(self, now: float) -> float:
        """Answers per second since the start."""
        elapsed = now - self.started
        return self.answers / elapsed if elapsed > 0 else 0.0

    def eta_s(self, now: float) -> float | None:
        """Seconds until the target, at the current answer rate and share of answers passing (None: unknown)."""
        rate = self.rate(now)
        if rate <= 0 or self.passing == 0:
            return None
        remaining = max(0, self.target - self.accepted_estimate)
        return remaining / (self.passing / self.answers) / rate

    def line(self, now: float) -> str:
        """``answers 37 · rejected 20 (too_short 15, refusal_or_meta 5) · 1.3/s · ETA 3m10s``."""
        parts = [f"answers {self.answers}"]
        if self.rejected:
            top = ", ".join(f"{reason} {n}" for reason, n in self.rejected.most_common(2))
            parts.append(f"rejected {sum(self.rejected.values())} ({top})")
        parts.append(f"{self.rate(now):.1f}/s")
        eta = self.eta_s(now)
        parts.append(f"ETA {_duration(eta)}" if eta is not None else "ETA ?")
        return " · ".join(parts)

    def hopeless(self) -> str | None:
        """When at least ``EARLY_ANSWERS`` answers came and ≥ ``EARLY_REJECTED_SHARE`` of them were rejected on
        their own — so many that the attempt cap cannot fill the target — the top reason, else None."""
        if self.answers < EARLY_ANSWERS:
            return None
        rejected = sum(self.rejected.values())
        passing_share = self.passing / self.answers
        if rejected / self.answers < EARLY_REJECTED_SHARE or passing_share * self.attempt_cap >= self.target:
            return None
        return self.rejected.most_common(1)[0][0]


class ProgressWatch:
    """The stage's bar: fed each answer as it arrives (``on_result`` of the client) and each round's count."""

    def __init__(
        self,
        what: str,
        tally: Tally,
        quality: QualityFilter,
        show: Callable[[int, str], None] = lambda done, line: None,
        clock: Callable[[], float] = time.monotonic,
        *,
        early_stop: bool = True,
    ) -> None:
        self.what = what
        self.tally = tally
        self.quality = quality
        self.show = show
        self.clock = clock
        self.early_stop = early_stop  # off with generate.allow_short: short labels are accepted there

    def on_result(self, request: ChatRequest, completion: Completion, cached: bool) -> None:
        """A client's ``on_result``: count the answer, update the bar, stop the stage when hopeless."""
        _text, reason = self.quality.precheck(completion.text, finish_reason=completion.finish_reason)
        self.tally.answer(reason)
        self.show(self.tally.accepted_estimate, self.tally.line(self.clock()))
        self.check()

    def round_done(self, accepted: int) -> None:
        self.tally.round_done(accepted)
        self.show(self.tally.accepted_estimate, self.tally.line(self.clock()))

    def check(self) -> None:
        reason = self.tally.hopeless() if self.early_stop else None
        if reason is None:
            return
        t = self.tally
        raise MostlyRejected(
            f"generate {self.what}: stopped early: {sum(t.rejected.values())} of the first {t.answers} answers "
            f"were rejected, most as {reason} ({t.rejected[reason]}); {FIXES.get(reason, 'fix the task prompt')}"
            "; nothing written, the answers are journaled"
        )


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int, str], None]]:
    """A rich bar on stderr; yields ``show(accepted estimate, status line)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with bar:
        task_id = bar.add_task(description, total=total, status="waiting for the first answer")
        yield lambda done, line: bar.update(task_id, completed=done, status=line)
