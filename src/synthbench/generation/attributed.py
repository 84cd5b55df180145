"""Attributed generation (AttrPrompt, Yu et al. 2023): each request asks for one combination of attribute values
(length, perspective, tone, subtopic, ...), so the dataset spreads over them instead of collapsing onto the
model's favourite phrasing.

The attribute dimensions come from the task spec (``prompt.attributes``, with per-label replacements in
``prompt.label_attributes``), else :data:`DEFAULT_ATTRIBUTES`. Values are balanced per (label, dimension): the
sample indices of a label run through shuffled cycles of the dimension's values (a seeded permutation per cycle,
as a data loader shuffles per epoch), so after any number of requests every value of a dimension has been asked
for equally often, give or take one, while the combinations across dimensions still vary."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from synthbench.generation.strategies import GenerationStrategy, SampleSlot, derive_seed
from synthbench.tasks.spec import TaskSpec
from synthbench.tasks.templates import render

# A small set that fits any text task; a spec's own ``prompt.attributes`` replaces it. Lengths are relative: the
# generation prompt already carries the word limit.
DEFAULT_ATTRIBUTES: dict[str, list[str]] = {
    "length": ["short, well under the word limit", "medium length", "long, close to the word limit"],
    "perspective": ["first person", "third person", "a neutral observer"],
    "tone": ["formal", "casual", "emotional", "matter-of-fact"],
}


def label_attributes(spec: TaskSpec, label: str) -> dict[str, list[str]]:
    """Dimension → values for ``label``: the spec's ``prompt.attributes`` (or :data:`DEFAULT_ATTRIBUTES` when
    it declares none), with the label's ``prompt.label_attributes`` replacing or adding dimensions. Dimensions
    in the spec's order, label-only ones last."""
    general = spec.prompt.attributes or DEFAULT_ATTRIBUTES
    merged = {dimension: list(values) for dimension, values in general.items()}
    merged.update({d: list(v) for d, v in spec.prompt.label_attributes.get(label, {}).items()})
    return merged


class Attributed(GenerationStrategy):
    """Zero-shot generation prompt plus one balanced, seeded combination of attribute values per request (the
    ``prompt.attributed`` template, after the generation prompt). The chosen values are the row's
    ``attributes`` provenance."""

    name = "attributed"
    prompt_fields: ClassVar[tuple[str, ...]] = (
        *GenerationStrategy.prompt_fields,
        "attributed",
        "attributes",
        "label_attributes",
    )

    def value_for(self, slot: SampleSlot, dimension: str, values: list[str]) -> str:
        """The value of ``dimension`` for ``slot``: position ``index mod n`` of the permutation of ``values``
        drawn for cycle ``index // n`` (seeded by seed, task, label, dimension and cycle)."""
        cycle, position = divmod(slot.index, len(values))
        order = list(values)
        random.Random(derive_seed(self.seed, self.spec.name, "attr", slot.label, dimension, cycle)).shuffle(
            order
        )
        return order[position]

    def attributes_for(self, slot: SampleSlot) -> dict[str, str]:
        """Dimension → the value asked of this request."""
        return {
            dimension: self.value_for(slot, dimension, values)
            for dimension, values in label_attributes(self.spec, slot.label).items()
        }

    def extra_prompt(self, slot: SampleSlot) -> str | None:
        return None

    def describe(self) -> str:
        per_label = "; ".join(
            f"{label}: "
            + ", ".join(f"{d} ({' / '.join(v)})" for d, v in label_attributes(self.spec, label).items())
            for label in self.spec.label_names
        )
        source = (
            "the task spec"
            if self.spec.prompt.attributes or self.spec.prompt.label_attributes
            else "defaults"
        )
        return (
            f"attributed (AttrPrompt): one balanced, seeded combination of attribute values per request, from "
            f"{source} — {per_label}; each row's values are its `attributes` field"
        )

    def closing_prompt(self, slot: SampleSlot) -> str | None:
        label = self.spec.label(slot.label)
        shown = "\n".join(f"- {dimension}: {value}" for dimension, value in self.attributes_for(slot).items())
        values = {"label_instruction": label.prompt_phrase, "label": label.name, "attributes": shown}
        return render("prompt.attributed", self.spec.prompt.attributed, values)

    def provenance(self, slot: SampleSlot) -> dict[str, Any]:
        return {"attributes": self.attributes_for(slot)}
