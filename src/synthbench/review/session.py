"""A review session of one task/mode: checks the inputs, draws the sample, recovers what each row's prompt
showed, and holds the decision store. The HTTP server (:mod:`synthbench.review.server`) only talks to this.

The real texts a row was shown (few-shot examples, grounding texts) are not stored with the row; they are a
seeded draw from the real train split (``GenerationStrategy.shown_texts``, keyed by seed, task, label and sample
index), so they are recomputed exactly from the row's ``sample_index`` with the same params that generated it.
If params changed since generation the draw would differ: the page then labels the examples as recomputed from
the current params.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from synthbench.config import Params
from synthbench.data.reviews import VERDICTS, Decision, DecisionStore, ensure_store
from synthbench.errors import ConfigError, DataError, SynthbenchError
from synthbench.layout import Layout
from synthbench.review.sample import ReviewRow, read_synthetic, review_rows, stratified_sample
from synthbench.tasks import load_task

DEFAULT_SAMPLE = 50


def check_task_mode(task: str, mode: str, params: Params) -> list[str]:
    """The task's label names; an unknown task or a mode params.yaml does not generate is a ConfigError."""
    if task not in params.tasks:
        raise ConfigError(f"unknown task {task!r}: params.yaml tasks are {params.tasks}")
    if mode not in params.modes:
        raise ConfigError(f"unknown mode {mode!r}: params.yaml modes are {params.modes}")
    return load_task(task, params.custom_tasks).label_names


def prepare_store(task: str, mode: str, layout: Layout) -> dict[str, Decision]:
    """The DVC ``review`` stage: create the (empty) review file if missing and validate it against the task's
    labels as prepare saved them (``labels.json``, the stage's one dep). Returns the decisions."""
    from synthbench.data.io import read_json

    return ensure_store(layout.review(task, mode), list(read_json(layout.labels(task))))


def few_shot_examples(
    task: str, mode: str, rows: list[dict[str, Any]], params: Params, layout: Layout
) -> dict[int, list[str]]:
    """Position in ``rows`` → the real texts its request showed (few-shot examples, grounding texts; see the
    module docstring); empty for modes that show none or when the real train split is gone."""
    from synthbench.generation.modes import build_strategy
    from synthbench.generation.strategies import SampleSlot

    try:
        # The same builder run_generate uses: the draw is a pure function of its arguments and the slot.
        strategy = build_strategy(
            mode,
            load_task(task, params.custom_tasks),
            params.seed,
            params.generate,
            layout.real(task, "train"),
        )
    except SynthbenchError:
        return {}
    return {
        position: shown
        for position, row in enumerate(rows)
        if isinstance(row.get("sample_index"), int)
        and (shown := strategy.shown_texts(SampleSlot(row["label"], int(row["sample_index"]))))
    }


@dataclass
class ReviewSession:
    task: str
    mode: str
    labels: list[str]
    rows: list[ReviewRow]
    store: DecisionStore
    n_synthetic: int  # rows in the synthetic file

    def payload(self) -> dict[str, Any]:
        """What the page loads (``GET /api/sample``): rows with their current decision."""
        decisions = self.store.all()
        return {
            "task": self.task,
            "mode": self.mode,
            "labels": self.labels,
            "verdicts": list(VERDICTS),
            "n_synthetic": self.n_synthetic,
            "store": str(self.store.path),
            "rows": [
                {**asdict(row), "decision": _decision_json(decisions.get(row.hash))} for row in self.rows
            ],
        }

    def decide(self, row_hash: str, verdict: str | None, relabel: str | None) -> dict[str, Any]:
        """Record a verdict (``None`` clears it) on a sampled row; an unknown row is a DataError."""
        row = next((r for r in self.rows if r.hash == row_hash), None)
        if row is None:
            raise DataError(f"row {row_hash!r} is not in this review's sample")
        decision = self.store.record(row.text, row.label, verdict, relabel)
        decisions = self.store.all()
        reviewed = sum(1 for r in self.rows if r.hash in decisions)
        return {"hash": row_hash, "decision": _decision_json(decision), "reviewed": reviewed}


def _decision_json(decision: Decision | None) -> dict[str, Any] | None:
    return (
        None
        if decision is None
        else {"verdict": decision.verdict, "relabel": decision.relabel, "at": decision.at}
    )


def open_session(
    task: str, mode: str, params: Params, layout: Layout, n: int = DEFAULT_SAMPLE, seed: int | None = None
) -> ReviewSession:
    """Check the inputs and build the session: ``n`` rows stratified by label, drawn with ``seed`` (default:
    params ``seed``)."""
    labels = check_task_mode(task, mode, params)
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    rows = read_synthetic(layout.synthetic(task, mode), labels)
    store = DecisionStore(layout.review(task, mode), labels)  # validates the file before anything is served
    sample = stratified_sample(rows, n, params.seed if seed is None else seed)
    examples = few_shot_examples(task, mode, sample, params, layout)
    return ReviewSession(
        task=task,
        mode=mode,
        labels=labels,
        rows=review_rows(sample, examples),
        store=store,
        n_synthetic=len(rows),
    )


__all__ = ["DEFAULT_SAMPLE", "ReviewSession", "check_task_mode", "open_session", "prepare_store"]
