"""Which rows a training condition trains on, built deterministically from the files earlier stages wrote.

Conditions (the ``--condition`` of the train stage; the names are parsed by :mod:`synthbench.conditions`):

=================  ==================================================================================
``real``           ``data/real/<task>/train.jsonl``
``<mode>``         ``data/synthetic/<task>/<mode>.jsonl`` (``zero_shot``, ``few_shot``, ...)
``real+<mode>``    the real rows followed by the synthetic rows of ``<mode>``
``real_n<N>``      a stratified, seeded subsample of N real rows (a point of the real-data learning curve);
                   the samples are nested: with the same ``train.data_seed`` the 50-row sample is part of
                   the 100-row sample
=================  ==================================================================================

Every condition is then cleaned the same way: texts that also occur in the real test set are removed (so
neither the training nor the validation split ever contains a test text), and duplicate texts are dropped
(first occurrence wins, so real rows win over synthetic ones in a mix; a text in both the train and the
validation split would make validation optimistic). Texts compare after collapsing whitespace and case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthbench.conditions import GENERATION_MODES, REAL, Condition, parse_condition
from synthbench.data.io import file_md5, read_jsonl
from synthbench.data.reviews import apply_review
from synthbench.data.sampling import Rows, stratified_subsample
from synthbench.data.text import text_key
from synthbench.errors import DataError
from synthbench.layout import LAYOUT, Layout

__all__ = ["TrainingData", "build_training_data", "check_label_coverage", "parse_condition", "source_path"]


def source_path(task: str, source: str, layout: Layout = LAYOUT) -> Path:
    """Where a source's rows live: ``real`` → the prepared real train split, a mode → its synthetic file."""
    return layout.real(task, "train") if source == REAL else layout.synthetic(task, source)


def dedupe(rows: Rows, origins: Sequence[str]) -> tuple[Rows, list[str], int]:
    """Drop repeated texts (first occurrence wins); ``origins`` (one per row) is filtered alongside."""
    seen: set[str] = set()
    kept: Rows = []
    kept_origins: list[str] = []
    for row, origin in zip(rows, origins, strict=True):
        key = text_key(row[0])
        if key not in seen:
            seen.add(key)
            kept.append(row)
            kept_origins.append(origin)
    return kept, kept_origins, len(rows) - len(kept)


def load_rows(path: Path, labels: Sequence[str]) -> Rows:
    """A condition file → (text, label) rows; rows without text/label or with an unknown label are DataErrors."""
    out: Rows = []
    for line_no, row in enumerate(read_jsonl(path), start=1):
        if "text" not in row or "label" not in row:
            raise DataError(f"{path}:{line_no}: a row needs 'text' and 'label'; regenerate the file")
        if row["label"] not in labels:
            raise DataError(
                f"{path}:{line_no}: label {row['label']!r} not in the task's labels {list(labels)}"
            )
        out.append((str(row["text"]), str(row["label"])))
    if not out:
        raise DataError(f"{path}: no training rows; check the generate/prepare summary for rejections")
    return out


@dataclass
class SourceFile:
    name: str  # "real" or a mode
    path: Path
    md5: str  # the file's md5, as DVC records it in dvc.lock
    rows: Rows


@dataclass
class TrainingData:
    """The rows a condition trains on (train + validation, before the split) and where they came from."""

    condition: Condition
    rows: Rows
    origins: list[str]  # per row: the source it came from
    sources: list[SourceFile]
    removed: dict[str, int] = field(default_factory=dict)  # test_overlap, duplicates
    subsample: dict[str, int] | None = None

    @property
    def digest(self) -> str:
        """The sources' md5s joined with '+' (one md5 for a single-file condition: DVC's hash of it)."""
        return "+".join(source.md5 for source in self.sources)

    def describe(self) -> dict[str, Any]:
        return {
            "sources": [
                {"name": s.name, "path": str(s.path), "md5": s.md5, "n_rows": len(s.rows)}
                for s in self.sources
            ],
            "n_rows": len(self.rows),
            "rows_per_source": dict(Counter(self.origins)),
            "rows_per_label": dict(sorted(Counter(label for _, label in self.rows).items())),
            "removed": self.removed,
            "subsample": self.subsample,
        }


def build_training_data(
    task: str,
    condition: str,
    labels: Sequence[str],
    test_texts: Iterable[str],
    data_seed: int,
    layout: Layout = LAYOUT,
    modes: Iterable[str] = GENERATION_MODES,
) -> TrainingData:
    """Read a condition's source files and build its rows: mix / subsample, then drop test texts and repeats.
    Deterministic: the same files and ``data_seed`` give the same rows in the same order."""
    parsed = parse_condition(condition, modes)
    sources = []
    for name in parsed.sources:
        path = source_path(task, name, layout)
        rows = load_rows(path, labels)
        if name != REAL:  # a person's verdicts (synthbench review): rejects dropped, corrections applied
            rows = apply_review(rows, layout.review(task, name), labels)
        sources.append(SourceFile(name=name, path=path, md5=file_md5(path), rows=rows))
    rows = [row for source in sources for row in source.rows]
    origins = [source.name for source in sources for _ in source.rows]
    rows_before = len(rows)
    banned = {text_key(text) for text in test_texts}
    clean = [i for i, (text, _) in enumerate(rows) if text_key(text) not in banned]
    test_overlap = rows_before - len(clean)
    rows, origins, duplicates = dedupe([rows[i] for i in clean], [origins[i] for i in clean])
    subsample = None
    if parsed.subsample is not None:
        available = len(rows)
        rows = stratified_subsample(rows, parsed.subsample, data_seed)
        origins = [REAL] * len(rows)  # a subsample reads the real rows only
        subsample = {"requested": parsed.subsample, "available": available, "used": len(rows)}
    if not rows:
        raise DataError(
            f"{sources[0].path}: no rows left after removing {test_overlap} test texts and {duplicates} repeats "
            f"(of {rows_before}); generate or prepare more data"
        )
    return TrainingData(
        condition=parsed,
        rows=rows,
        origins=origins,
        sources=sources,
        removed={"test_overlap": test_overlap, "duplicates": duplicates},
        subsample=subsample,
    )


def check_label_coverage(rows: Rows, test_labels: Iterable[str], where: str) -> None:
    """Every label of the test set must have training rows, or the classifier can never predict it."""
    missing = sorted(set(test_labels) - {label for _, label in rows})
    if missing:
        raise DataError(
            f"{where}: no training rows for label(s) {missing} that the real test set has; generate more "
            f"(generate.per_label / generate.max_attempts_factor) or prepare more (prepare.train_per_label)"
        )
