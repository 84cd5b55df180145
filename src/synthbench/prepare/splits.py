"""The pure core of prepare: raw rows by split → cleaned, deduplicated, capped train/test and their stats.

Deterministic: texts normalised, repeated texts removed (compared by :func:`synthbench.data.text.text_key`),
test texts removed from train, stratified caps per label drawn with a seeded generator.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from synthbench.config import PrepareParams
from synthbench.data.sampling import Rows, stratified_cap, stratified_split
from synthbench.data.sources import RawRows, map_labels, normalise_text
from synthbench.data.text import text_key
from synthbench.errors import DataError
from synthbench.tasks import TaskSpec


def dedupe(rows: Rows) -> tuple[Rows, int]:
    """Drop repeated texts (first occurrence wins). Returns (rows, number dropped)."""
    seen: set[str] = set()
    kept: Rows = []
    for text, label in rows:
        key = text_key(text)
        if key not in seen:
            seen.add(key)
            kept.append((text, label))
    return kept, len(rows) - len(kept)


@dataclass
class PreparedTask:
    train: Rows
    test: Rows
    stats: dict[str, object]


def _clean(
    spec: TaskSpec, raw: dict[str, RawRows], origins: dict[str, str], min_chars: int
) -> dict[str, Rows]:
    cleaned: dict[str, Rows] = {}
    for split, rows in raw.items():
        mapped = map_labels(rows, spec, origins.get(split, split))
        normalised = ((normalise_text(text), label) for text, label in mapped)
        cleaned[split] = [(text, label) for text, label in normalised if len(text) >= min_chars]
    return cleaned


def build_real_splits(
    spec: TaskSpec, raw: dict[str, RawRows], origins: dict[str, str], prepare: PrepareParams, seed: int
) -> PreparedTask:
    """Raw rows by split (``train``/``test``, or one pool) → cleaned, deduplicated, capped train/test."""
    cleaned = _clean(spec, raw, origins, prepare.min_chars)
    pool_dupes = 0
    if "test" not in cleaned:
        pool = cleaned.pop("train", None) or cleaned.pop("all", [])
        pool, pool_dupes = dedupe(pool)
        cleaned["train"], cleaned["test"] = stratified_split(pool, prepare.test_fraction, seed)
    for split in ("train", "test"):
        if not cleaned.get(split):
            raise DataError(
                f"{origins.get(split, 'task ' + spec.name)}: the {split} split of task {spec.name} is empty after "
                f"cleaning; check the file and its label column"
            )
    test, test_dupes = dedupe(cleaned["test"])
    train, train_dupes = dedupe(cleaned["train"])
    test_keys = {text_key(text) for text, _ in test}
    overlap = sum(1 for text, _ in train if text_key(text) in test_keys)
    train = [row for row in train if text_key(row[0]) not in test_keys]
    train = stratified_cap(train, prepare.train_per_label, seed)
    test = stratified_cap(test, prepare.test_per_label, seed + 1)
    train_labels = Counter(label for _, label in train)
    if len(train_labels) < 2:
        raise DataError(
            f"task {spec.name}: train has {len(train_labels)} label(s) after cleaning; need at least 2"
        )
    stats: dict[str, object] = {
        "task": spec.name,
        "labels": spec.label_names,
        "n_train": len(train),
        "n_test": len(test),
        "train_per_label": {name: train_labels.get(name, 0) for name in spec.label_names},
        "test_per_label": {name: sum(1 for _, lab in test if lab == name) for name in spec.label_names},
        "duplicates_removed": {"train": train_dupes, "test": test_dupes, "before_split": pool_dupes},
        "train_texts_also_in_test_removed": overlap,
        "mean_words": {
            split: round(sum(len(t.split()) for t, _ in rows) / len(rows), 1)
            for split, rows in (("train", train), ("test", test))
        },
        "sources": origins,
    }
    return PreparedTask(train=train, test=test, stats=stats)
