"""``synthbench cache check``: verify a journal file and, when asked, salvage what can be read of a damaged one
into a fresh file (the damaged one is kept beside it as ``<name>.damaged-<unix time>``)."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from synthbench.errors import JournalError
from synthbench.generation.journal import open_sqlite

_COLUMNS = (
    "key, text, prompt_tokens, completion_tokens, finish_reason, model, latency_s, task, mode, requested_model, "
    "cost_usd, meta, created_at"
)


@dataclass(frozen=True)
class CheckReport:
    path: str
    ok: bool
    problem: str | None  # what is wrong, one line; None when ok
    answers: int  # answers readable
    salvaged_to: str | None = None  # the damaged file's new name after --salvage
    kept: int = 0  # answers carried into the fresh journal by --salvage


def check_journal(path: Path) -> CheckReport:
    """Open ``path`` read-only and run SQLite's integrity check; count the answers that read back."""
    if not path.exists():
        return CheckReport(str(path), False, "no journal at this path (nothing journaled yet)", 0)
    if path.stat().st_size == 0:
        return CheckReport(str(path), False, "0 bytes: truncated; every answer it held is gone", 0)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchall()
            answers = int(conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        return CheckReport(str(path), False, f"unreadable ({exc})", 0)
    problems = [row[0] for row in verdict if row[0] != "ok"]
    return CheckReport(str(path), not problems, "; ".join(problems)[:300] or None, answers)


def _readable_rows(path: Path) -> list[tuple[object, ...]]:
    """Every completion row that reads back, page by page (a damaged page loses its rows, not the file)."""
    rows: list[tuple[object, ...]] = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.DatabaseError:
        return rows
    with conn:
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(completions)")}
            raw = ", text_raw" if "text_raw" in columns else ", NULL"
            high = conn.execute("SELECT MAX(rowid) FROM completions").fetchone()[0] or 0
        except sqlite3.DatabaseError:
            return rows
        step = 200
        for start in range(0, int(high) + 1, step):
            try:
                rows += conn.execute(
                    f"SELECT {_COLUMNS}{raw} FROM completions WHERE rowid >= ? AND rowid < ?",
                    (start, start + step),
                ).fetchall()
            except sqlite3.DatabaseError:
                continue
    return rows


def salvage_journal(path: Path) -> CheckReport:
    """Move a damaged journal aside and write the answers that read back into a fresh one at ``path``."""
    report = check_journal(path)
    if report.ok or not path.exists():
        return report
    rows = _readable_rows(path) if path.stat().st_size else []
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    try:
        conn = open_sqlite(path)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT OR IGNORE INTO completions ({_COLUMNS}, text_raw) VALUES ({', '.join('?' * 14)})", rows
        )
        conn.execute("COMMIT")
        conn.close()
    except sqlite3.DatabaseError as exc:
        raise JournalError(
            f"{path}: could not write the salvaged journal ({exc}); the damaged one is {aside}"
        ) from None
    return CheckReport(str(path), False, report.problem, report.answers, str(aside), len(rows))
