"""Generation strategies: one contract, ``GenerationStrategy.messages(...)``, for zero-shot, few-shot, grounded,
attributed (:mod:`synthbench.generation.attributed`) and any later strategy. A strategy is pure: the same (label,
sample index, previous texts) gives the same messages, so the journal key of every request is stable across runs
and resumes. :mod:`synthbench.generation.modes` registers each one under its mode name."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    response_format: Mapping[str, Any] | None = None,
) -> str:
    """Journal key of one request: a content address of everything that determines its answer. Identical
    prompts at different sample indices are different keys (they are meant to give different texts), and so
    are a request with and without a ``response_format`` (constrained decoding answers differently)."""
    fields: dict[str, Any] = {
        "task": task,
        "mode": mode,
        "label": slot.label,
        "index": slot.index,
        "model": model,
        "sampling": dict(sampling),
        "messages": messages,
    }
    if response_format is not None:  # absent, not null: keys of unconstrained requests stay what they were
        fields["response_format"] = dict(response_format)
    return stable_hash(fields)


def derive_seed(*parts: object) -> int:
    """A 32-bit seed that is a pure function of ``parts`` (their ``str`` forms)."""
    return int(stable_hash([str(p) for p in parts], length=8), 16)


def truncate_words(text: str, max_words: int) -> str:
    """The first ``max_words`` whitespace-separated words of ``text``, joined by single spaces."""
    return " ".join(text.split()[:max_words])


@dataclass(frozen=True)
class StrategyInputs:
    """Everything a strategy may be built from (each takes what it needs): the study seed, the diversity prompt's
    settings, the real training texts by label (prepare's ``train.jsonl``; never the test split) and the
    real-example settings (``generate.few_shot_k`` texts per request, each cut to ``few_shot_max_words``)."""

    seed: int
    diversity_every: int
    diversity_examples: int
    real_by_label: Mapping[str, Sequence[str]] = field(default_factory=dict)
    few_shot_k: int = 3
    few_shot_max_words: int = 60

    @property
    def common(self) -> dict[str, Any]:
        """The base strategy's keyword arguments."""
        return {
            "seed": self.seed,
            "diversity_every": self.diversity_every,
            "diversity_examples": self.diversity_examples,
        }


class GenerationStrategy(ABC):
    """Builds the chat messages of one request after the paper: context prompt (system) + generation prompt
    (label, style/subtopic, length) + a diversity prompt every ``diversity_every`` outputs."""

    name: str = "base"
    # Whether building it needs the real training rows (only then does the stage read them).
    reads_real: ClassVar[bool] = False
    # The PromptSpec fields this strategy's prompts depend on: they make its template_id. (The paper's modes keep
    # the fields they always hashed, so their prompt ids stay what earlier datasets recorded.)
    prompt_fields: ClassVar[tuple[str, ...]] = (
        "context",
        "generation",
        "styles",
        "length_words",
        "diversity",
        "few_shot",
    )

    @classmethod
    def from_inputs(cls, spec: TaskSpec, inputs: StrategyInputs) -> GenerationStrategy:
        """The registry's factory: this strategy for ``spec`` built from ``inputs``."""
        return cls(spec, **inputs.common)

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
        offset = derive_seed(self.seed, self.spec.name, slot.label, "style") % len(styles)
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

    def closing_prompt(self, slot: SampleSlot) -> str | None:
        """Strategy-specific prompt text placed after the generation prompt (None for none)."""
        return None

    def shown_texts(self, slot: SampleSlot) -> list[str]:
        """The real texts this request shows, as shown (truncated): an answer copying one is rejected as
        ``copied_example`` (:class:`synthbench.generation.filters.QualityFilter`)."""
        return []

    def describe(self) -> str:
        """One line for the dataset card: what this strategy adds to the paper's zero-shot prompt."""
        return "zero-shot: context + generation prompt (label, style/subtopic, length) + diversity prompt"

    def provenance(self, slot: SampleSlot) -> dict[str, Any]:
        """Extra JSON-able fields the request's accepted row carries (beyond mode, model, prompt id, seed, index)."""
        return {}

    def format_prompt(self) -> str | None:
        """The task's declared text format as an instruction (None when it declares none): every strategy
        asks for the same structure, worded once in the task spec."""
        text_format = self.spec.text_format
        return text_format.prompt() if text_format is not None else None

    def messages(self, slot: SampleSlot, previous: Sequence[str] = ()) -> list[Message]:
        """[system, user]: the context prompt, then the strategy's text, the generation prompt, the text-format
        instruction and (from the second round) the diversity prompt."""
        pieces = (
            self.extra_prompt(slot),
            self.generation_prompt(slot),
            self.format_prompt(),
            self.closing_prompt(slot),
        )
        parts = [p for p in pieces if p]
        diversity = self.diversity_prompt(slot, previous)
        if diversity:
            parts.append(diversity)
        return [
            {"role": "system", "content": self.spec.prompt.context},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def request_seed(self, slot: SampleSlot) -> int:
        """Per-request sampling seed: different per sample index, identical on re-runs (< 2**31)."""
        return derive_seed(self.seed, self.spec.name, self.name, slot.label, slot.index) % (2**31 - 1)

    def template_id(self) -> str:
        """Hash of every template piece this strategy uses: the ``prompt id`` in provenance."""
        dump = self.spec.prompt.model_dump()
        pieces: dict[str, Any] = {
            "strategy": self.name,
            "prompt": {key: dump[key] for key in self.prompt_fields},
        }
        if self.spec.text_format is not None:  # only then: ids of tasks without a format stay what they were
            pieces["text_format"] = self.spec.text_format.model_dump()
        return stable_hash(pieces, length=12)


class ZeroShot(GenerationStrategy):
    name = "zero_shot"

    def extra_prompt(self, slot: SampleSlot) -> str | None:
        return None


class FewShot(GenerationStrategy):
    """Adds a fresh, seeded random draw of ``k`` real training texts of the label to every request, with the
    instruction to imitate them without copying or paraphrasing."""

    name = "few_shot"
    reads_real = True

    @classmethod
    def from_inputs(cls, spec: TaskSpec, inputs: StrategyInputs) -> GenerationStrategy:
        return cls(
            spec,
            **inputs.common,
            real_by_label=inputs.real_by_label,
            k=inputs.few_shot_k,
            max_words=inputs.few_shot_max_words,
        )

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
        rng = random.Random(derive_seed(self.seed, self.spec.name, "few_shot_draw", slot.label, slot.index))
        draw = rng.sample(pool, min(self.k, len(pool)))
        return [truncate_words(text, self.max_words) for text in draw]

    def shown_texts(self, slot: SampleSlot) -> list[str]:
        return self.examples_for(slot)

    def describe(self) -> str:
        return (
            f"few-shot: {self.k} real training texts of the intended label per request (a fresh seeded draw), "
            f"cut to {self.max_words} words; an answer copying one is rejected as copied_example"
        )

    def extra_prompt(self, slot: SampleSlot) -> str | None:
        examples = self.examples_for(slot)
        if not examples:
            return None
        label = self.spec.label(slot.label)
        # Bullets, not numbers: small models copy "1." into their own output.
        shown = "\n".join(f"- {text}" for text in examples)
        values = {"label_instruction": label.prompt_phrase, "label": label.name, "examples": shown}
        return render("prompt.few_shot", self.spec.prompt.few_shot, values)


class Grounded(GenerationStrategy):
    """Grounds every request in ``k`` unlabeled real training texts: a seeded draw per (label, sample index) from
    all training texts pooled across labels, so the model sees the domain's real topics and register without
    being told (or shown) which class any of them is; then the usual generation prompt for the intended label.
    The template (``prompt.grounded``) tells the model not to copy or paraphrase them."""

    name = "grounded"
    reads_real = True
    prompt_fields = (*GenerationStrategy.prompt_fields, "grounded")

    @classmethod
    def from_inputs(cls, spec: TaskSpec, inputs: StrategyInputs) -> GenerationStrategy:
        return cls(
            spec,
            **inputs.common,
            real_by_label=inputs.real_by_label,
            k=inputs.few_shot_k,
            max_words=inputs.few_shot_max_words,
        )

    def __init__(
        self,
        spec: TaskSpec,
        *,
        real_by_label: Mapping[str, Sequence[str]],
        k: int,
        max_words: int,
        **common: Any,
    ) -> None:
        """``real_by_label``: the real training texts by label, pooled here (labels in sorted order, file order
        within a label, so the pool, hence every draw, is a function of the file alone)."""
        super().__init__(spec, **common)
        self.pool = [text for label in sorted(real_by_label) for text in real_by_label[label]]
        self.k = k
        self.max_words = max_words

    def shown_texts(self, slot: SampleSlot) -> list[str]:
        # Drawn per (label, index) although the pool ignores labels: requests of different labels at one
        # index are grounded differently, and the draw is stable when other labels' targets change.
        rng = random.Random(derive_seed(self.seed, self.spec.name, "grounded_draw", slot.label, slot.index))
        draw = rng.sample(self.pool, min(self.k, len(self.pool)))
        return [truncate_words(text, self.max_words) for text in draw]

    def describe(self) -> str:
        return (
            f"grounded: {self.k} unlabeled real training texts per request (a seeded draw from all "
            f"{len(self.pool)} training texts, any label), cut to {self.max_words} words, as topic/style grounding; "
            "an answer copying one is rejected as copied_example"
        )

    def extra_prompt(self, slot: SampleSlot) -> str | None:
        shown = self.shown_texts(slot)
        if not shown:
            return None
        label = self.spec.label(slot.label)
        values = {
            "label_instruction": label.prompt_phrase,
            "label": label.name,
            "examples": "\n".join(f"- {text}" for text in shown),
        }
        return render("prompt.grounded", self.spec.prompt.grounded, values)
