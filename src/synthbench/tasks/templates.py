"""Prompt templates of a task spec: the fields each may use, and the check, at load time, that every template
renders for every label and style — so a bad placeholder fails before the first paid request, not after.

Templates are ``str.format`` strings with plain named fields only (no ``{label.attr}``, ``{0}``, ``{!r}``):
a literal brace is written ``{{`` or ``}}`` (e.g. JSON in a prompt)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

# template key (as in the task spec) → the fields it may use
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "prompt.generation": ("label_instruction", "label", "style", "length_words"),
    "prompt.few_shot": ("label_instruction", "label", "examples"),
    "prompt.diversity": ("previous",),
    "prompt.grounded": ("label_instruction", "label", "examples"),
    "prompt.attributed": ("label_instruction", "label", "attributes"),
    "prompt.targeted": ("label_instruction", "label", "example", "difficulty"),
    "text_format.instruction": ("markers",),
}

_FIX = "write a literal brace as {{ or }}"


class TemplateError(ValueError):
    """A template that cannot render: ``key`` is its place in the task spec (``prompt.generation``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def template_fields(key: str, template: str) -> set[str]:
    """The named fields ``template`` uses; TemplateError for an unbalanced brace, a positional/attribute/
    indexed field, a conversion, or a field ``key`` does not offer."""
    allowed = TEMPLATE_FIELDS[key]
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(key, f"{exc} ({_FIX})") from None
    used: set[str] = set()
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed:
            shown = name if len(name) <= 40 else name[:40] + "…"
            raise TemplateError(
                key,
                f"unknown placeholder {{{shown}}}; use only "
                + ", ".join(f"{{{f}}}" for f in allowed)
                + f", or {_FIX}",
            )
        if conversion or (spec and ("{" in spec or "}" in spec)):
            raise TemplateError(key, f"placeholder {{{name}}} may not carry a conversion or nested field")
        used.add(name)
    return used


def render(key: str, template: str, values: Mapping[str, Any]) -> str:
    """``template`` formatted with ``values`` (the fields ``key`` offers); TemplateError when it cannot be."""
    template_fields(key, template)
    try:
        return template.format(**values)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise TemplateError(key, f"does not render ({type(exc).__name__}: {exc})") from None


def check_task_templates(spec: Any) -> None:
    """Render every template of ``spec`` (a TaskSpec) for every label and style, with placeholder few-shot
    examples and earlier texts: whatever would fail during generation fails here. Raises TemplateError."""
    prompt = spec.prompt
    for label in spec.labels:
        common = {"label_instruction": label.prompt_phrase, "label": label.name}
        for style in prompt.styles:
            render(
                "prompt.generation",
                prompt.generation,
                {**common, "style": style, "length_words": prompt.length_words},
            )
        render("prompt.few_shot", prompt.few_shot, {**common, "examples": "- an example"})
        render("prompt.grounded", prompt.grounded, {**common, "examples": "- a real text"})
        render("prompt.attributed", prompt.attributed, {**common, "attributes": "- tone: formal"})
        render(
            "prompt.targeted",
            prompt.targeted,
            {**common, "example": "a real text", "difficulty": "a classifier was unsure of it"},
        )
    render("prompt.diversity", prompt.diversity, {"previous": "- an earlier text"})
    if spec.text_format is not None:
        spec.text_format.prompt()
