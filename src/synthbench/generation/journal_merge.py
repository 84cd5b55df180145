"""``synthbench cache merge``: fold other machines' journals into this one.

Each machine of a team run journals the answers it paid for in its own SQLite file. Merging them gives the
aggregator (or the next run anywhere) every answer once: a key is the hash of everything that determines its
answer, so a key held by two journals is the same request answered twice, and one answer is kept — the
destination's, so answers that data already on disk was built from never change. Nothing is lost: after the
merge every source key is in the destination, or the merge is rolled back and an error says so.

The destination's schema is created by ``Journal`` itself; rows are copied with plain SQL over ``ATTACH`` in
one transaction, using the columns both files have (a journal written by an older or newer synthbench merges
as long as it has the columns the destination cannot do without).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from synthbench.errors import ConfigError, DataError
from synthbench.generation.batch_store import BatchStore
from synthbench.generation.journal import Journal

# Answers and Batch API bookkeeping travel; anything else (e.g. in-flight leases) is one machine's live state.
_TABLES = ("completions", "batch_jobs", "batch_requests")


@dataclass(frozen=True)
class MergeReport:
    """What merging one source journal did. ``differing``: keys both journals held with different texts (the
    destination's answer was kept)."""

    source: Path
    answers: int
    added: int
    already_present: int
    differing: int
    batch_jobs_added: int


def merge_journals(into: str | Path, sources: Sequence[str | Path]) -> list[MergeReport]:
    """Copy every answer (and Batch API job) of each journal in ``sources`` that ``into`` lacks into ``into``;
    returns one report per source, in order."""
    destination = Path(into)
    paths = [Path(source) for source in sources]
    for path in paths:
        _check_source(path, destination)
    with Journal(destination) as journal:  # creates the file and its current schema (WAL mode) if needed
        BatchStore(journal)  # and the Batch API tables, kept in the same file
    conn = sqlite3.connect(str(destination), timeout=30.0, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        return [_merge_one(conn, path) for path in paths]
    finally:
        conn.close()


def _check_source(path: Path, destination: Path) -> None:
    if not path.is_file():
        raise DataError(
            f"journal {path}: no such file; copy the other machine's .synthbench/journal.sqlite here"
        )
    if destination.exists() and path.resolve() == destination.resolve():
        raise ConfigError(f"journal {path} is the destination itself; name the other machines' journals")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as probe:
            found = probe.execute("SELECT 1 FROM sqlite_master WHERE name = 'completions'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"journal {path}: not a SQLite file ({exc})") from None
    if found is None:
        raise DataError(f"journal {path}: has no 'completions' table; is it a synthbench journal?")


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[tuple[str, bool]]:
    """(name, required) per column; required = part of the primary key, or NOT NULL without a default."""
    rows = conn.execute(f"PRAGMA {schema}.table_info({table})").fetchall()
    return [
        (name, (bool(notnull) and default is None) or bool(pk)) for _, name, _, notnull, default, pk in rows
    ]


def _copy_table(conn: sqlite3.Connection, table: str, source: Path) -> int:
    """INSERT OR IGNORE the source's rows of ``table`` (columns both sides have); returns rows added."""
    theirs = {name for name, _ in _columns(conn, "src", table)}
    if not theirs:  # an older journal without this table: nothing to copy
        return 0
    ours = _columns(conn, "main", table)
    missing = [name for name, required in ours if required and name not in theirs]
    if missing:
        raise DataError(f"journal {source}: table {table} lacks columns {missing}; merge with its synthbench")
    names = ", ".join(name for name, _ in ours if name in theirs)
    before = conn.total_changes
    conn.execute(f"INSERT OR IGNORE INTO main.{table} ({names}) SELECT {names} FROM src.{table}")
    return conn.total_changes - before


def _merge_one(conn: sqlite3.Connection, source: Path) -> MergeReport:
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    try:
        conn.execute(
            "BEGIN IMMEDIATE"
        )  # one writer at a time; a failed merge leaves the destination as it was
        try:
            answers = conn.execute("SELECT COUNT(*) FROM src.completions").fetchone()[0]
            already, differing = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(s.text IS NOT m.text), 0) "
                "FROM src.completions s JOIN main.completions m ON m.key = s.key"
            ).fetchone()
            added, jobs, _ = (_copy_table(conn, table, source) for table in _TABLES)
            lost = conn.execute(
                "SELECT COUNT(*) FROM src.completions s WHERE NOT EXISTS "
                "(SELECT 1 FROM main.completions m WHERE m.key = s.key)"
            ).fetchone()[0]
            if lost:
                raise DataError(f"journal {source}: {lost} answers did not arrive; nothing was merged")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("DETACH DATABASE src")
    return MergeReport(source, int(answers), added, int(already), int(differing), jobs)
