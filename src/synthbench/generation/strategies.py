"""Generation strategies: one contract, ``GenerationStrategy.messages(...)``, for zero-shot, few-shot, and any
later strategy. A strategy is pure: the same (label, sample index, previous texts) gives the same messages, so
the journal key of every request is stable across runs and resumes."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from synthbench.data.io import stable_hash
from synthbench.tasks.spec import TaskSpec
from synthbench.tasks.templates import render

Message = dict[str, str]


@dataclass(frozen=True)
class SampleSlot:
    """One requested output: ``index`` counts requests of this label from 0 (retries of rejected rows too)."""

    label: str
    index: int


def request_key(
    task: str,
    mode: str,
    slot: SampleSlot,
    model: str,
    sampling: Mapping[str, object],
    messages: list[Message],
) -> str:
    """Journal key of one request: a content address of everything that determines its answer. Identical
    prompts at different sample indices are different keys (they are meant to give different texts)."""
    return stable_hash(
        {
            "task": task,
            "mode": mode,
            "label": slot.label,
            "index": slot.index,
            "model": model,
            "sampling": dict(sampling),
            "messages": messages,
        }
    )


def _derive_seed(*parts: object) -> int:
    return int(stable_hash([str(p) for p in parts], length=8), 16)


class GenerationStrategy(ABC):
    """Builds the chat messages of one request after the paper: context prompt (system) + generation prompt
    (label, style/subtopic, length) + a diversity prompt every ``diversity_every`` outputs."""

    name: str = "base"

    def __init__(
        self,
        spec: TaskSpec,
        *,
        seed: int,
        diversity_every: int,
        diversity_examples: int,
        diversity_words: int = 15,
    ) -> None:
        self.spec = spec
        self.diversity_words = diversity_words
        self.seed = seed
        self.diversity_every = diversity_every
        self.diversity_examples = diversity_examples

    def style_for(self, slot: SampleSlot) -> str:
        """Styles cycle per label from a seeded offset, so every subtopic is used about equally."""
        styles = self.spec.prompt.styles
        offset = _derive_seed(self.seed, self.spec.name, slot.label, "style") % len(styles)
        return styles[(offset + slot.index) % len(styles)]

    def generation_prompt(self, slot: SampleSlot) -> str:
        label = self.spec.label(slot.label)
        values = {
            "label_instruction": label.prompt_phrase,
            "label": label.name,
            "style": self.style_for(slot),
            "length_words": self.spec.prompt.length_words,
        }
        return render("prompt.generation", self.spec.prompt.generation, values)

    def diversity_prompt(self, slot: SampleSlot, previous: Sequence[str]) -> str | None:
        """From the second round of ``diversity_every`` outputs on, ask for something unlike earlier outputs."""
        if self.diversity_every <= 0 or slot.index < self.diversity_every or not previous:
            return None
        # Short excerpts are enough to say "not like these", and keep prompts (and their cost) small.
        shown = "\n".join(
            f"- {' '.join(text.split()[: self.diversity_words])}"
            for text in list(previous)[-self.diversity_examples :]
        )
        return render("prompt.diversity", self.spec.prompt.diversity, {"previous": shown})

    @abstractmethod
    def extra_prompt(self, slot: SampleSlot) -> str | None:
        """Strategy-specific prompt text placed before the generation prompt (None for none)."""

    def messages(self, slot: SampleSlot, previous: Sequence[str] = ()) -> list[Message]:
        parts = [p for p in (self.extra_prompt(slot), self.generation_prompt(slot)) if p]
        diversity = self.diversity_prompt(slot, previous)
        if diversity:
            parts.append(diversity)
        return [
            {"role": "system", "content": self.spec.prompt.context},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def request_seed(self, slot: SampleSlot) -> int:
        """Per-request sampling seed: different per sample index, identical on re-runs (< 2**31)."""
        return _derive_seed(self.seed, self.spec.name, self.name, slot.label, slot.index) % (2**31 - 1)

    def template_id(self) -> str:
        """Hash of every template piece this strategy uses: the ``prompt id`` in provenance."""
        return stable_hash({"strategy": self.name, "prompt": self.spec.prompt.model_dump()}, length=12)


class ZeroShot(GenerationStrategy):
    name = "zero_shot"

    def extra_prompt(self, slot: SampleSlot) -> str | None:
        return None


class FewShot(GenerationStrategy):
    """Adds a fresh, seeded random draw of ``k`` real training texts of the label to every request, with the
    instruction to imitate them without copying or paraphrasing."""

    name = "few_shot"

    def __init__(
        self,
        spec: TaskSpec,
        *,
        real_by_label: Mapping[str, Sequence[str]],
        k: int,
        max_words: int,
        **common: Any,
    ) -> None:
        """``common``: the base strategy's keyword arguments (seed, diversity_every, diversity_examples)."""
        super().__init__(spec, **common)
        self.real_by_label = {label: list(texts) for label, texts in real_by_label.items()}
        self.k = k
        self.max_words = max_words

    def examples_for(self, slot: SampleSlot) -> list[str]:
        pool = self.real_by_label.get(slot.label, [])
        rng = random.Random(_derive_seed(self.seed, self.spec.name, "few_shot_draw", slot.label, slot.index))
        draw = rng.sample(pool, min(self.k, len(pool)))
        return [" ".join(text.split()[: self.max_words]) for text in draw]

    def extra_prompt(self, slot: SampleSlot) -> str | None:
        examples = self.examples_for(slot)
        if not examples:
            return None
        label = self.spec.label(slot.label)
        # Bullets, not numbers: small models copy "1." into their own output.
        shown = "\n".join(f"- {text}" for text in examples)
        values = {"label_instruction": label.prompt_phrase, "label": label.name, "examples": shown}
        return render("prompt.few_shot", self.spec.prompt.few_shot, values)


def make_strategy(
    mode: str,
    spec: TaskSpec,
    *,
    seed: int,
    diversity_every: int,
    diversity_examples: int,
    real_by_label: Mapping[str, Sequence[str]] | None = None,
    few_shot_k: int = 3,
    few_shot_max_words: int = 60,
) -> GenerationStrategy:
    common = {"seed": seed, "diversity_every": diversity_every, "diversity_examples": diversity_examples}
    if mode == "zero_shot":
        return ZeroShot(spec, **common)
    if mode == "few_shot":
        return FewShot(
            spec, **common, real_by_label=real_by_label or {}, k=few_shot_k, max_words=few_shot_max_words
        )
    raise ValueError(f"unknown generation mode {mode!r}")
