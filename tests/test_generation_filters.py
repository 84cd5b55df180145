"""Near-duplicate removal in the quality filter: real MinHash/LSH (datasketch), no mocks."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from synthbench.generation.filters import (
    REJECT_COPIED,
    REJECT_DUPLICATE,
    REJECT_NEAR_DUPLICATE,
    QualityFilter,
    normalise_for_dedupe,
    shingles,
)

# 20 words → 18 word 3-grams.
BASE = (
    "The director holds the tension from the opening scene to the final shot and the cast never misses a beat"
)
# Last word changed: 1 of 18 shingles differs, true Jaccard 17/19 ≈ 0.89.
LAST_WORD_CHANGED = BASE.replace("a beat", "a step")
# A middle word changed: 3 shingles differ, true Jaccard 15/21 ≈ 0.71.
MIDDLE_WORD_CHANGED = BASE.replace("opening scene", "opening moment")
SAME_TOPIC = (
    "A tense thriller whose director builds suspense slowly, though the cast is uneven and "
    "the ending falls rather flat"
)


def _filter(threshold: float | None = 0.8) -> QualityFilter:
    return QualityFilter(min_words=3, max_words=None, near_duplicate_threshold=threshold)


def _run(quality: QualityFilter, texts: list[str], **kwargs: list[str]) -> list[str | None]:
    return [quality.check(text, **kwargs)[1] for text in texts]


def test_shingles_are_word_trigrams_of_normalised_text() -> None:
    assert len(BASE.split()) == 20
    assert len(shingles(normalise_for_dedupe(BASE))) == 18
    assert shingles("a b c d") == [b"a b c", b"b c d"]
    assert shingles("two words") == [b"two words"]  # under 3 words: the whole text is one shingle


def test_one_word_changed_is_rejected_as_near_duplicate_and_counted() -> None:
    quality = _filter()
    reasons = _run(quality, [BASE, LAST_WORD_CHANGED, SAME_TOPIC, BASE.upper() + "!"])
    assert reasons == [None, REJECT_NEAR_DUPLICATE, None, REJECT_DUPLICATE]
    # How the generate stage tallies them: one count per reason.
    assert Counter(r for r in reasons if r) == {REJECT_NEAR_DUPLICATE: 1, REJECT_DUPLICATE: 1}


def test_similarity_is_estimated_jaccard_of_word_trigrams() -> None:
    quality = _filter()
    base = quality.signature(normalise_for_dedupe(BASE))
    assert base.jaccard(quality.signature(normalise_for_dedupe(LAST_WORD_CHANGED))) == pytest.approx(
        17 / 19, abs=0.1
    )
    assert base.jaccard(quality.signature(normalise_for_dedupe(MIDDLE_WORD_CHANGED))) == pytest.approx(
        15 / 21, abs=0.1
    )
    assert base.jaccard(quality.signature(normalise_for_dedupe(SAME_TOPIC))) < 0.1


def test_threshold_decides_how_near_is_a_duplicate() -> None:
    # A mid-text word touches 3 of the 18 trigrams (Jaccard ≈ 0.71): kept at 0.8, rejected at 0.6.
    assert _run(_filter(0.8), [BASE, MIDDLE_WORD_CHANGED]) == [None, None]
    assert _run(_filter(0.6), [BASE, MIDDLE_WORD_CHANGED]) == [None, REJECT_NEAR_DUPLICATE]


def test_threshold_none_rejects_exact_duplicates_only() -> None:
    quality = _filter(None)
    reasons = _run(quality, [BASE, LAST_WORD_CHANGED, MIDDLE_WORD_CHANGED, f'"{BASE.lower()}."'])
    assert reasons == [None, None, None, REJECT_DUPLICATE]
    assert quality.check(LAST_WORD_CHANGED, examples=[BASE]) == (None, REJECT_DUPLICATE)
    assert _run(_filter(None), [LAST_WORD_CHANGED], examples=[BASE]) == [None]


def test_near_copy_of_a_few_shot_example_is_copied_example() -> None:
    quality = _filter()
    assert quality.check(LAST_WORD_CHANGED, examples=[SAME_TOPIC, BASE]) == (None, REJECT_COPIED)
    assert quality.check(BASE + ".", examples=[BASE]) == (None, REJECT_COPIED)
    # Examples are not remembered as accepted texts: without them the same text is fine.
    assert quality.check(LAST_WORD_CHANGED) == (LAST_WORD_CHANGED, None)


def test_only_accepted_texts_are_indexed() -> None:
    # b is a with its last 12 words replaced, c is b with its first 12 replaced (60 words each). True
    # Jaccard: a~b = b~c ≈ 0.66, a~c ≈ 0.42. b is rejected as near a; c must pass, as b was never accepted.
    words = [f"w{i}" for i in range(60)]
    b_words = [*words[:48], *(f"x{i}" for i in range(12))]
    a, b = " ".join(words), " ".join(b_words)
    c = " ".join([*(f"y{i}" for i in range(12)), *b_words[12:]])
    assert _run(_filter(0.55), [a, b, c]) == [None, REJECT_NEAR_DUPLICATE, None]
    # Had b been accepted, c would be its near-duplicate.
    assert _run(_filter(0.55), [b, c]) == [None, REJECT_NEAR_DUPLICATE]


def test_decisions_are_deterministic_across_fresh_filters() -> None:
    rng = random.Random(3)
    vocab = [f"word{i}" for i in range(60)]  # small vocabulary: many near-duplicates
    texts = [" ".join(rng.choices(vocab, k=12)) for _ in range(300)]
    texts += [t.replace(t.split()[-1], "changed", 1) for t in texts[:100]]
    first, second = _run(_filter(0.5), texts), _run(_filter(0.5), texts)
    assert first == second
    assert first.count(REJECT_NEAR_DUPLICATE) > 0


def test_scale_5000_distinct_texts_fast_and_none_falsely_rejected() -> None:
    rng = random.Random(0)
    vocab = [f"tok{i}" for i in range(3000)]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(10, 30))) for _ in range(5000)]
    assert len(set(texts)) == 5000
    quality = _filter()
    start = time.perf_counter()
    reasons = _run(quality, texts, examples=texts[:3])
    elapsed = time.perf_counter() - start
    assert reasons[3:] == [None] * 4997
    assert reasons[:3] == [REJECT_COPIED] * 3
    assert elapsed < 20.0
