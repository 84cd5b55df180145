"""Quality filters for generated texts: clean what can be cleaned (wrapping quotes, meta preambles, label
leakage), reject what cannot, and count every rejection by reason."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

REJECT_EMPTY = "empty"
REJECT_TOO_SHORT = "too_short"
REJECT_TOO_LONG = "too_long"
REJECT_DUPLICATE = "duplicate"
REJECT_REFUSAL = "refusal_or_meta"
REJECT_COPIED = "copied_example"

_PREAMBLE = re.compile(
    r"^\s*(?:sure|okay|ok|certainly|of course)?[!,.\s]*"
    r"(?:here(?:'s| is| are)\b[^:\n]{0,80}:|(?:title|headline|review|snippet|news item|text|output)\s*:)\s*",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:as an ai|language model|i can(?:no|')t (?:help|assist|write|create|provide)|i'm sorry|i am sorry|"
    r"i apologi[sz]e|i'm unable|i am unable|cannot fulfill)\b",
    re.IGNORECASE,
)
_WRAPPING_QUOTES = re.compile(r'^\s*["“”\'‘’]+(.*?)["“”\'‘’]+\s*$', re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


def normalise_for_dedupe(text: str) -> str:
    """Lower-case, drop punctuation, collapse spaces: two texts equal under this are duplicates."""
    return _WHITESPACE.sub(" ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def clean_text(text: str, label_names: Iterable[str] = ()) -> str:
    """Strip meta preambles ('Here is a review:'), wrapping quotes and trailing label tags ('(positive)')."""
    cleaned = text.strip()
    for _ in range(2):  # 'Sure! Here is a headline: Title: ...' has two layers
        cleaned = _PREAMBLE.sub("", cleaned, count=1).strip()
    match = _WRAPPING_QUOTES.match(cleaned)
    if match:
        cleaned = match.group(1).strip()
    for name in label_names:
        escaped = re.escape(name)
        cleaned = re.sub(
            rf"\s*[\(\[]\s*(?:label|sentiment|category)?\s*:?\s*{escaped}\s*[\)\]]\s*$",
            "",
            cleaned,
            flags=re.I,
        )
        cleaned = re.sub(
            rf"^\s*(?:label|sentiment|category)\s*:\s*{escaped}\b[\s:.-]*", "", cleaned, flags=re.I
        )
        cleaned = re.sub(
            rf"\s*(?:label|sentiment|category)\s*:\s*{escaped}\s*\.?\s*$", "", cleaned, flags=re.I
        )
    return _WHITESPACE.sub(" ", cleaned).strip()


@dataclass
class QualityFilter:
    """Stateful across a dataset: remembers accepted texts to reject duplicates."""

    min_words: int
    max_words: int | None
    label_names: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def check(self, raw_text: str, *, examples: Iterable[str] = ()) -> tuple[str | None, str | None]:
        """Return (cleaned text, None) if accepted, else (None, rejection reason)."""
        text = clean_text(raw_text, self.label_names)
        if not text:
            return None, REJECT_EMPTY
        if _REFUSAL.search(text):
            return None, REJECT_REFUSAL
        n_words = len(text.split())
        if n_words < self.min_words:
            return None, REJECT_TOO_SHORT
        if self.max_words is not None and n_words > self.max_words:
            return None, REJECT_TOO_LONG
        key = normalise_for_dedupe(text)
        if any(key == normalise_for_dedupe(example) for example in examples):
            return None, REJECT_COPIED
        if key in self._seen:
            return None, REJECT_DUPLICATE
        self._seen.add(key)
        return text, None
