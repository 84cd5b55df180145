"""Targeted generation (after S3, Wang et al. EMNLP 2023: synthesise around a small model's errors): fit a quick
classifier on part of the real *train* split, find the held-out real rows it gets wrong, and ask for new texts
of the same label around each one.

The quick classifier is logistic regression on MiniLM sentence embeddings (the label-consistency oracle's kind),
fit on a seeded, stratified ``1 - HOLDOUT_FRACTION`` of the real training rows and scored on the rest. Each
label's *hard examples* are its held-out rows the classifier got wrong, most confidently wrong first, then
(so that a label the classifier never misses still gets targets) its correctly read rows with the lowest
probability on the true label. Request ``i`` of a label works around hard example ``i mod n``: the prompt shows
it (cut to ``few_shot_max_words``), says which label the classifier mistook it for, and asks for a different
text of the intended label that is just as easy to mistake; a copy of it is rejected as ``copied_example``.

It uses labelled real data, so its rows belong next to ``real`` and in the mix ``real+targeted`` (``mixes:
[targeted]``), not next to the zero-shot modes, which see no real label. It never reads the test split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from synthbench.errors import ConfigError
from synthbench.generation.strategies import GenerationStrategy, SampleSlot, StrategyInputs, truncate_words
from synthbench.tasks.spec import TaskSpec
from synthbench.tasks.templates import render

HOLDOUT_FRACTION = 0.3  # of the real training rows: where the quick classifier's errors are found


@dataclass(frozen=True)
class HardExample:
    """A held-out real training row the quick classifier found hard: ``misread_as`` is its prediction (the
    true label when it was right), ``confidence`` that prediction's probability."""

    text: str
    label: str
    misread_as: str
    confidence: float

    @property
    def wrong(self) -> bool:
        return self.misread_as != self.label


def find_hard_examples(
    real_by_label: Mapping[str, Sequence[str]], labels: Sequence[str], seed: int
) -> dict[str, list[HardExample]]:
    """Label → its hard examples, hardest first (see the module docstring). Needs ≥ 2 real rows per label."""
    # lazy: only this mode needs the encoder and scikit-learn (~1 s to import) at build time
    from sklearn.model_selection import train_test_split

    from synthbench.encoder import cheap_classifier, embed_texts

    thin = {
        label: len(real_by_label.get(label, ())) for label in labels if len(real_by_label.get(label, ())) < 2
    }
    if thin:
        raise ConfigError(
            f"mode targeted needs at least 2 real training rows per label to find the quick classifier's errors; "
            f"got {thin}: raise prepare.train_per_label or drop targeted from modes"
        )
    texts = [text for label in labels for text in real_by_label[label]]
    y = np.asarray([label for label in labels for _ in real_by_label[label]])
    fit, held = train_test_split(
        np.arange(len(texts)), test_size=HOLDOUT_FRACTION, random_state=seed % (2**32), stratify=y
    )
    emb = embed_texts(texts)
    model = cheap_classifier(emb[fit], y[fit], seed % (2**32))
    probs = model.predict_proba(emb[held])
    classes = [str(c) for c in model.classes_]
    out: dict[str, list[HardExample]] = {label: [] for label in labels}
    for row, p in zip(held, probs, strict=True):
        best = int(np.argmax(p))
        truth = str(y[row])
        out[truth].append(HardExample(texts[row], truth, classes[best], float(p[best])))

    def hardness(example: HardExample) -> tuple[int, float, str]:
        # wrong ones first, most confidently wrong first; then right ones, least confident first; text breaks ties
        sure = example.confidence if example.wrong else -example.confidence
        return (0 if example.wrong else 1, -sure, example.text)

    return {label: sorted(examples, key=hardness) for label, examples in out.items()}


class Targeted(GenerationStrategy):
    """The generation prompt plus one hard real example of the intended label per request (``prompt.targeted``,
    before the generation prompt). Provenance: the hard example's position and what it was misread as."""

    name = "targeted"
    reads_real = True
    prompt_fields: ClassVar[tuple[str, ...]] = (*GenerationStrategy.prompt_fields, "targeted")

    @classmethod
    def from_inputs(cls, spec: TaskSpec, inputs: StrategyInputs) -> GenerationStrategy:
        hard = find_hard_examples(inputs.real_by_label, spec.label_names, inputs.seed)
        return cls(spec, **inputs.common, hard=hard, max_words=inputs.few_shot_max_words)

    def __init__(
        self, spec: TaskSpec, *, hard: Mapping[str, Sequence[HardExample]], max_words: int, **common: Any
    ) -> None:
        """``hard``: label → hard examples (:func:`find_hard_examples`); ``common``: the base keyword arguments."""
        super().__init__(spec, **common)
        self.hard = {label: list(examples) for label, examples in hard.items()}
        self.max_words = max_words

    def target_for(self, slot: SampleSlot) -> HardExample:
        examples = self.hard[slot.label]
        return examples[slot.index % len(examples)]

    def shown_texts(self, slot: SampleSlot) -> list[str]:
        return [truncate_words(self.target_for(slot).text, self.max_words)]

    def describe(self) -> str:
        wrong = sum(e.wrong for examples in self.hard.values() for e in examples)
        total = sum(len(examples) for examples in self.hard.values())
        return (
            f"targeted: one hard real training text of the intended label per request ({wrong} of {total} "
            f"held-out rows misread by a quick classifier on the other {1 - HOLDOUT_FRACTION:.0%}, then the "
            f"least certain right ones), cut to {self.max_words} words; an answer copying it is rejected as "
            "copied_example"
        )

    def provenance(self, slot: SampleSlot) -> dict[str, Any]:
        target = self.target_for(slot)
        position = slot.index % len(self.hard[slot.label])
        return {"target": {"hard_example": position, "misread_as": target.misread_as}}

    def extra_prompt(self, slot: SampleSlot) -> str | None:
        target = self.target_for(slot)
        label = self.spec.label(slot.label)
        difficulty = (
            f"a classifier mistook it for {self.spec.label(target.misread_as).prompt_phrase}"
            if target.wrong
            else "a classifier was unsure of it"
        )
        values = {
            "label_instruction": label.prompt_phrase,
            "label": label.name,
            "example": self.shown_texts(slot)[0],
            "difficulty": difficulty,
        }
        return render("prompt.targeted", self.spec.prompt.targeted, values)
