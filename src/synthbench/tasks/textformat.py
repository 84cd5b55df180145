"""The structure every input text of a task carries (``text_format`` in the task spec), as data: which marker
pairs each text holds — relation classification wraps its head entity in ``<e1>…</e1>`` and its tail in
``<e2>…</e2>``. One module knows what "carries the format" means: the check the quality filter applies to every
generated text (:func:`format_problem`), the sentence the generation prompt adds (:meth:`TextFormat.prompt`), and
the regular expression a constrained decoder is given (:func:`format_pattern`).

The rule: every marker occurs exactly once; each pair's opening marker comes before its closing one with
non-blank text between them; pairs do not overlap (one pair's span holds no other marker). The pairs may come in
any order.
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from synthbench.schema import StrictModel
from synthbench.tasks.templates import render

MAX_MARKER_PAIRS = 4  # the pattern lists every order of the pairs: 4! = 24 alternatives at most
DEFAULT_INSTRUCTION = (
    "Mark the text: {markers}. Use each marker exactly once, each opening marker before its closing one with "
    "words between them; the pairs may come in either order."
)
# Characters that never occur free in a constrained answer: the JSON string delimiters and escapes (a grammar
# works on the raw JSON characters, where a bare quote or newline would end or break the string).
_JSON_UNSAFE = '"\\\n\r\t'


class MarkerPair(StrictModel):
    """One pair of markers, e.g. ``open: "<e1>"``, ``close: "</e1>"``, ``wraps: "the head entity"``. The spec
    may also write it as a list: ``["<e1>", "</e1>"]`` or ``["<e1>", "</e1>", "the head entity"]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    open: str = Field(min_length=1, max_length=40)
    close: str = Field(min_length=1, max_length=40)
    wraps: str | None = Field(default=None, min_length=1, description="What the pair marks, for the prompt.")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)):
            if len(data) not in (2, 3):
                raise ValueError("a marker pair is [open, close] or [open, close, what it wraps]")
            return dict(zip(("open", "close", "wraps"), data, strict=False))
        return data

    @field_validator("open", "close")
    @classmethod
    def _plain_marker(cls, value: str) -> str:
        # Cleaning collapses whitespace, and a constrained answer carries the marker raw inside a JSON string.
        if any(c.isspace() or c in _JSON_UNSAFE or not c.isprintable() for c in value):
            raise ValueError(
                f"marker {value!r} may not contain whitespace, quotes, backslashes or control chars"
            )
        # The pattern keeps a marker's first character out of free text: a letter or digit there would forbid
        # that letter everywhere else.
        if value[0].isalnum() or value[0] == "_":
            raise ValueError(f"marker {value!r} must start with a symbol such as < or [")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> MarkerPair:
        if self.open == self.close:
            raise ValueError(f"opening and closing marker are both {self.open!r}")
        return self

    @property
    def phrase(self) -> str:
        shown = f"{self.open}...{self.close}"
        return f"{self.wraps} in {shown}" if self.wraps else f"a span in {shown}"


class TextFormat(StrictModel):
    """``text_format`` of a task spec: the marker pairs every text carries and the prompt sentence saying so
    (``instruction``, a template whose ``{markers}`` field lists the pairs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    markers: list[MarkerPair] = Field(min_length=1, max_length=MAX_MARKER_PAIRS)
    instruction: str = Field(
        default=DEFAULT_INSTRUCTION,
        description="Prompt sentence; field {markers}: e.g. 'the head entity in <e1>...</e1> and the tail "
        "entity in <e2>...</e2>'.",
    )

    @field_validator("markers")
    @classmethod
    def _no_marker_inside_another(cls, pairs: list[MarkerPair]) -> list[MarkerPair]:
        # A marker inside another ('<e1>' in '<e1>>') would make "exactly once" ambiguous.
        all_markers = [m for pair in pairs for m in (pair.open, pair.close)]
        for a, b in itertools.permutations(all_markers, 2):
            if a in b:
                raise ValueError(f"marker {a!r} occurs inside marker {b!r}; markers must be distinct")
        return pairs

    def prompt(self) -> str:
        """The instruction, rendered: what the generation prompt appends."""
        phrases = [pair.phrase for pair in self.markers]
        listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
        return render("text_format.instruction", self.instruction, {"markers": listed})


def format_problem(text: str, text_format: TextFormat) -> str | None:
    """Why ``text`` does not carry ``text_format`` (one short phrase, e.g. ``'<e2>' occurs 0 times``), or None
    when it does."""
    spans: list[tuple[int, int]] = []
    for pair in text_format.markers:
        for marker in (pair.open, pair.close):
            count = text.count(marker)
            if count != 1:
                return f"{marker!r} occurs {count} times"
        start, end = text.index(pair.open), text.index(pair.close)
        if end < start:
            return f"{pair.close!r} comes before {pair.open!r}"
        if not text[start + len(pair.open) : end].strip():
            return f"nothing between {pair.open!r} and {pair.close!r}"
        spans.append((start, end + len(pair.close)))
    spans.sort()
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        if second_start < first_end:
            return "marker pairs overlap"
    return None


def _literal(text: str) -> str:
    """``text`` as a regular-expression literal (ECMA-262 and Python alike)."""
    return "".join("\\" + c if c in "\\^$.|?*+()[]{}" else c for c in text)


def format_pattern(text_format: TextFormat) -> str:
    """An anchored regular expression (ECMA-262, as JSON Schema's ``pattern``; Python's ``re`` reads it alike)
    whose every match carries ``text_format``. Stricter than :func:`format_problem` so that a grammar can
    enforce it without look-ahead: outside the markers the text holds none of the markers' first characters and
    no quote, backslash, tab or line break (they would be raw JSON inside a constrained answer)."""
    banned = sorted(
        {pair.open[0] for pair in text_format.markers} | {p.close[0] for p in text_format.markers}
    )
    # Only brackets need escaping: markers hold no backslash, and a caret after the first is a literal.
    escaped = "".join("\\" + c if c in "[]" else c for c in banned if c != "-")
    tail = "-" if "-" in banned else ""  # last in the class: a literal hyphen, never a range
    free = f'[^{escaped}"\\\\\\n\\r\\t{tail}]'
    first = f'[^{escaped}"\\\\\\n\\r\\t {tail}]'  # a span starts with a visible character
    orders = [
        "".join(f"{_literal(p.open)} *{first}{free}*{_literal(p.close)}{free}*" for p in order)
        for order in itertools.permutations(text_format.markers)
    ]
    return f"^{free}*({'|'.join(orders)})$"
