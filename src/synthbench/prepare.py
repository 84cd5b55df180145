"""Stage 1 — prepare: a task's real data → ``data/real/<task>/{train,test}.jsonl`` + ``stats.json``.

Deterministic: texts normalised, exact duplicates removed, test texts removed from train, stratified caps per
label drawn with a seeded generator. Everything is validated before the first byte is written.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from synthbench.config import Params
from synthbench.data.io import write_json, write_jsonl
from synthbench.data.sources import RawRows, load_raw, map_labels, normalise_text
from synthbench.errors import DataError
from synthbench.tasks import TaskSpec, load_task

Rows = list[tuple[str, str]]


def real_dir(task: str, root: Path = Path(".")) -> Path:
    return root / "data" / "real" / task


def dedupe(rows: Rows) -> tuple[Rows, int]:
    """Drop exact duplicate texts (first occurrence wins). Returns (rows, number dropped)."""
    seen: set[str] = set()
    kept: Rows = []
    for text, label in rows:
        if text not in seen:
            seen.add(text)
            kept.append((text, label))
    return kept, len(rows) - len(kept)


def shuffled_indices_by_label(rows: Rows, seed: int) -> dict[str, list[int]]:
    """Row indices per label, labels in sorted order, each list shuffled by one ``random.Random(seed)``
    consumed label by label (so a split or cap is reproducible from the seed alone)."""
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


def stratified_split(rows: Rows, test_fraction: float, seed: int) -> tuple[Rows, Rows]:
    """Per label, round(f·n) of the shuffled indices go to test."""
    test_idx: set[int] = set()
    for indices in shuffled_indices_by_label(rows, seed).values():
        test_idx.update(indices[: round(test_fraction * len(indices))])
    train = [row for i, row in enumerate(rows) if i not in test_idx]
    test = [row for i, row in enumerate(rows) if i in test_idx]
    return train, test


def stratified_cap(rows: Rows, per_label: int | None, seed: int) -> Rows:
    """Keep at most ``per_label`` rows of each label, chosen by a seeded shuffle; source order is kept."""
    if per_label is None:
        return rows
    keep: set[int] = set()
    for indices in shuffled_indices_by_label(rows, seed).values():
        keep.update(indices[:per_label])
    return [row for i, row in enumerate(rows) if i in keep]


@dataclass
class PreparedTask:
    train: Rows
    test: Rows
    stats: dict[str, object]


def build_real_splits(
    spec: TaskSpec, raw: dict[str, RawRows], origins: dict[str, str], params: Params
) -> PreparedTask:
    """Pure core of the stage: raw rows by split → cleaned, deduplicated, capped train/test."""
    cleaned: dict[str, Rows] = {}
    for split, rows in raw.items():
        mapped = map_labels(rows, spec, origins.get(split, split))
        cleaned[split] = [
            (text, label)
            for text, label in ((normalise_text(t), lab) for t, lab in mapped)
            if len(text) >= params.prepare.min_chars
        ]
    pool_dupes = 0
    if "test" not in cleaned:
        pool = cleaned.pop("train", None) or cleaned.pop("all", [])
        pool, pool_dupes = dedupe(pool)
        cleaned["train"], cleaned["test"] = stratified_split(pool, params.prepare.test_fraction, params.seed)
    for split in ("train", "test"):
        if not cleaned.get(split):
            raise DataError(
                f"{origins.get(split, 'task ' + spec.name)}: the {split} split of task {spec.name} is empty after "
                f"cleaning; check the file and its label column"
            )
    test, test_dupes = dedupe(cleaned["test"])
    train, train_dupes = dedupe(cleaned["train"])
    test_texts = {text for text, _ in test}
    overlap = sum(1 for text, _ in train if text in test_texts)
    train = [row for row in train if row[0] not in test_texts]
    train = stratified_cap(train, params.prepare.train_per_label, params.seed)
    test = stratified_cap(test, params.prepare.test_per_label, params.seed + 1)
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


def run_prepare(task: str, params: Params, root: Path = Path(".")) -> dict[str, object]:
    """Stage entry point: load, clean, cap and write a task's real splits. Returns the stats."""
    spec = load_task(task, params.custom_tasks)
    raw, origins = load_raw(spec, params.local_sources.get(task))
    prepared = build_real_splits(spec, raw, origins, params)
    out = real_dir(task, root)
    write_jsonl(out / "train.jsonl", ({"text": t, "label": lab} for t, lab in prepared.train))
    write_jsonl(out / "test.jsonl", ({"text": t, "label": lab} for t, lab in prepared.test))
    write_json(out / "stats.json", prepared.stats)
    return prepared.stats
