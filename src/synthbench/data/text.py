"""What "the same text" means, once for every stage: prepare's dedupe and test-overlap removal, training's
cleaning, the analysis and the generation filter's exact-duplicate check all compare texts by :func:`text_key`."""

from __future__ import annotations


def text_key(text: str) -> str:
    """Comparison key for "the same text": whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()
