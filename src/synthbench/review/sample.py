"""Which synthetic rows a person reviews: a seeded sample, stratified by intended label, and what each row shows.

The sample depends only on the synthetic file, ``n`` and ``seed``: a reload (or a colleague with the same
checkout) sees the same rows in the same order. Rows are interleaved across labels after a seeded shuffle, so a
reviewer never judges one label in a long block (which invites anchoring).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthbench.data.io import read_jsonl
from synthbench.data.reviews import content_hash
from synthbench.errors import DataError


@dataclass
class ReviewRow:
    """One row as the page shows it. ``oracle_confidence`` in [0, 1]; ``examples`` are the few-shot texts
    the generating prompt showed (empty for zero-shot rows or when they cannot be recovered)."""

    hash: str
    text: str
    label: str
    oracle_label: str | None = None
    oracle_confidence: float | None = None
    examples: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # model, prompt_id, sample_index, request_key


def read_synthetic(path: Path, labels: Sequence[str]) -> list[dict[str, Any]]:
    """The synthetic rows of one task/mode; a missing file or a row without text/a known label is a DataError."""
    if not path.exists():
        raise DataError(f"{path}: no synthetic rows yet; run `dvc repro` (the generate stage) first")
    rows = read_jsonl(path)
    for line_no, row in enumerate(rows, start=1):
        if not isinstance(row.get("text"), str) or row.get("label") not in labels:
            raise DataError(
                f"{path}:{line_no}: a row needs 'text' and a label in {list(labels)}; regenerate it"
            )
    return rows


def stratified_sample(rows: Sequence[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` rows (all when ``n`` ≥ len(rows)) with each label's share kept by largest remainder and at least
    one row of every label while ``n`` allows; repeated texts count once. Output is interleaved across labels
    (label order by first appearance) after a seeded shuffle within each label."""
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for row in rows:
        key = content_hash(row["text"])
        if key not in seen:
            seen.add(key)
            by_label[row["label"]].append(row)
    total = sum(len(group) for group in by_label.values())
    n = min(n, total)
    quota = {label: n * len(group) / total for label, group in by_label.items()} if total else {}
    take = {label: int(share) for label, share in quota.items()}
    by_remainder = sorted(quota, key=lambda lab: quota[lab] - take[lab], reverse=True)
    for label in by_remainder[: n - sum(take.values())]:  # largest remainder: the floors leave < #labels rows
        take[label] += 1
    for label in take:  # a label too rare for its share still shows one row, taken from the largest label
        largest = max(take, key=take.__getitem__)
        if take[label] == 0 and take[largest] > 1:
            take[label], take[largest] = 1, take[largest] - 1
    rng = random.Random(seed)
    picked: dict[str, list[dict[str, Any]]] = {}
    for label, group in by_label.items():
        order = group[:]
        rng.shuffle(order)
        picked[label] = order[: take[label]]
    out: list[dict[str, Any]] = []
    for position in range(max((len(group) for group in picked.values()), default=0)):
        out += [group[position] for group in picked.values() if position < len(group)]
    return out


def _oracle(row: dict[str, Any]) -> tuple[str | None, float | None]:
    """The real-data oracle's verdict when generation (or a pilot) wrote one: ``oracle_label`` and
    ``oracle_confidence`` columns, or an ``oracle`` object with ``label`` and ``confidence``."""
    nested = row.get("oracle") if isinstance(row.get("oracle"), dict) else {}
    label = row.get("oracle_label", nested.get("label"))
    confidence = row.get("oracle_confidence", nested.get("confidence"))
    return (
        str(label) if label is not None else None,
        float(confidence) if isinstance(confidence, int | float) else None,
    )


_PROVENANCE = ("mode", "model", "prompt_id", "seed", "sample_index", "request_key", "attributes", "target")


def review_rows(
    sample: Sequence[dict[str, Any]], examples: dict[int, list[str]] | None = None
) -> list[ReviewRow]:
    """The page's rows for ``sample``; ``examples`` maps a position in ``sample`` to its few-shot texts."""
    out = []
    for position, row in enumerate(sample):
        oracle_label, oracle_confidence = _oracle(row)
        out.append(
            ReviewRow(
                hash=content_hash(row["text"]),
                text=row["text"],
                label=row["label"],
                oracle_label=oracle_label,
                oracle_confidence=oracle_confidence,
                examples=(examples or {}).get(position, []),
                provenance={key: row[key] for key in _PROVENANCE if key in row},
            )
        )
    return out
