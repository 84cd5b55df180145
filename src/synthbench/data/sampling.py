"""The one stratified sampler behind every split, cap and subsample: rows grouped by label, each label's row
indices shuffled by one ``random.Random(seed)`` consumed label by label in sorted label order. Everything built
on it is reproducible from the rows and the seed alone, and keeps the rows' source order.

Rows are ``(text, label)`` tuples.
"""

from __future__ import annotations

import random
from collections import defaultdict

from synthbench.errors import DataError, TrainingError

Rows = list[tuple[str, str]]


def shuffled_indices_by_label(rows: Rows, seed: int) -> dict[str, list[int]]:
    """Row indices per label, labels in sorted order, each list shuffled by one ``random.Random(seed)``
    consumed label by label (a one-row label consumes nothing)."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, (_, label) in enumerate(rows):
        by_label[label].append(index)
    rng = random.Random(seed)
    shuffled: dict[str, list[int]] = {}
    for label in sorted(by_label):
        indices = by_label[label][:]
        rng.shuffle(indices)
        shuffled[label] = indices
    return shuffled


def _partition(rows: Rows, chosen: set[int]) -> tuple[Rows, Rows]:
    """(rows not chosen, rows chosen), both in source order."""
    return [r for i, r in enumerate(rows) if i not in chosen], [r for i, r in enumerate(rows) if i in chosen]


def stratified_split(rows: Rows, test_fraction: float, seed: int) -> tuple[Rows, Rows]:
    """(train, test): per label, round(f·n) of the shuffled indices go to test."""
    chosen = {
        i
        for ix in shuffled_indices_by_label(rows, seed).values()
        for i in ix[: round(test_fraction * len(ix))]
    }
    return _partition(rows, chosen)


def stratified_cap(rows: Rows, per_label: int | None, seed: int) -> Rows:
    """At most ``per_label`` rows of each label, chosen by the seeded shuffle; None keeps every row."""
    if per_label is None:
        return rows
    keep = {i for indices in shuffled_indices_by_label(rows, seed).values() for i in indices[:per_label]}
    return _partition(rows, keep)[1]


def validation_split(rows: Rows, fraction: float, seed: int) -> tuple[Rows, Rows]:
    """(train, validation): round(f·n) of each label (at least 1 when a label has ≥ 2 rows) go to validation; a
    label with a single row stays in train. Raises TrainingError when either side would be empty."""
    chosen = {
        i
        for indices in shuffled_indices_by_label(rows, seed).values()
        if len(indices) >= 2
        for i in indices[: max(1, round(fraction * len(indices)))]
    }
    train, val = _partition(rows, chosen)
    if not val or not train:
        raise TrainingError(
            f"too few examples to split ({len(rows)} rows): need at least 2 of some label; "
            f"generate or prepare more data (generate.per_label / prepare.train_per_label)"
        )
    return train, val


def stratified_subsample(rows: Rows, n: int, seed: int) -> Rows:
    """``n`` of ``rows`` with each label's share kept (to ±1 row) and at least 2 rows of every label. Nested:
    for the same ``rows`` and ``seed``, a smaller sample is part of a larger one. ``n`` ≥ len(rows) returns all
    rows. Raises DataError when ``n`` < 2 × the number of labels."""
    if n >= len(rows):
        return list(rows)
    shuffled = shuffled_indices_by_label(rows, seed)
    if n < 2 * len(shuffled):
        raise DataError(
            f"learning-curve size {n} is too small for {len(shuffled)} labels: need at least 2 rows per label "
            f"({2 * len(shuffled)}); raise it in train.learning_curve_sizes"
        )
    ranked: list[tuple[int, float, int, int]] = []
    for label_rank, indices in enumerate(shuffled.values()):
        for position, index in enumerate(indices):
            # A label's first two rows come first; after that rows are interleaved by their position within
            # their label, so any prefix of this one global order is a stratified sample.
            ranked.append((0 if position < 2 else 1, (position + 0.5) / len(indices), label_rank, index))
    chosen = {index for *_, index in sorted(ranked)[:n]}
    return _partition(rows, chosen)[1]
