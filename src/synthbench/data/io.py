"""File I/O every stage shares. Writes are atomic (temp file in the same folder + ``os.replace``), so a crash
or Ctrl-C never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from synthbench.errors import DataError


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on clean exit fsync and rename it over ``path``, else delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` as JSON lines atomically; return the number of rows written."""
    count = 0
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")
            count += 1
    return count


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a malformed line raises a DataError naming file and line."""
    source = Path(path)
    if not source.exists():
        raise DataError(f"{source}: file not found; run the stage that writes it (dvc repro) or fix the path")
    rows: list[dict[str, Any]] = []
    with source.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{source}:{line_no}: not valid JSON ({exc.msg}); fix or regenerate the file"
                ) from None
    return rows


def write_json(path: str | os.PathLike[str], payload: Any) -> None:
    """Write pretty JSON atomically (metrics, summaries, manifests)."""
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2, ensure_ascii=False, sort_keys=False)
        handle.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    source = Path(path)
    if not source.exists():
        raise DataError(f"{source}: file not found; run the stage that writes it (dvc repro) or fix the path")
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}: not valid JSON ({exc.msg}); fix or regenerate the file") from None


TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def read_table(
    path: str | os.PathLike[str], fix: str, *, dtype: Any = str, empty_is_missing: bool = False
) -> Any:
    """The one reader of tabular files (CSV / JSONL / JSON / Parquet) → a pandas DataFrame. CSV cells are read
    with ``dtype`` (strings by default) and empty cells stay ``""`` unless ``empty_is_missing``. A missing,
    unreadable or unsupported file is a one-line DataError naming it and ``fix`` (what to change)."""
    import pandas as pd

    table_path = Path(path)
    if not table_path.exists():
        raise DataError(f"{table_path}: file not found; {fix}")
    suffix = table_path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{table_path}: unsupported file type {suffix!r}; use {', '.join(TABLE_SUFFIXES)}")
    try:
        if suffix == ".csv":
            return pd.read_csv(
                table_path, dtype=dtype, keep_default_na=False, na_values=[""] if empty_is_missing else None
            )
        if suffix == ".parquet":
            return pd.read_parquet(table_path)
        return pd.read_json(table_path, lines=suffix == ".jsonl", dtype=False)
    except (ValueError, pd.errors.ParserError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{table_path}: could not be read ({str(exc).splitlines()[0]}); {fix}") from None


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display, same pixels everywhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """The one way a figure is saved: laid out tight, written atomically as PNG, then closed."""
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)
    pyplot().close(fig)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def file_md5(path: str | os.PathLike[str]) -> str:
    """MD5 of a file's bytes: the same digest DVC 3 records for a file output in dvc.lock."""
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stable_hash(payload: Any, length: int = 64) -> str:
    """SHA-256 of the canonical JSON form of ``payload`` (sorted keys): a content address, like HF fingerprints."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]
