"""The LLM answer journal: every answer an endpoint gives is committed here, keyed by its request key, before
anything uses it. A crash, ``kill -9`` or Ctrl-C loses at most the answers still in flight; a re-run asks only
for the keys the journal lacks.

One SQLite file in WAL mode (readers never block the writer; a commit survives a killed process), three
tables:

- ``completions``: one row per request key (text, token counts, finish reason, reported model, latency, cost
  and the caller's ``meta`` as JSON);
- ``batch_jobs``: OpenAI Batch API jobs submitted for a key set (id, input file, status, ingestion state);
- ``batch_requests``: the keys (and their meta) each batch job carries, so a later run can ingest its output.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

SCHEMA_VERSION = 1
_CHUNK = 500  # keys per SELECT ... IN (...), well under SQLite's host-parameter limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key               TEXT PRIMARY KEY,
    text              TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason     TEXT,
    model             TEXT NOT NULL,
    latency_s         REAL NOT NULL,
    task              TEXT,
    mode              TEXT,
    requested_model   TEXT,
    cost_usd          REAL NOT NULL DEFAULT 0,
    meta              TEXT NOT NULL,
    created_at        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS completions_task ON completions (task);
CREATE INDEX IF NOT EXISTS completions_created ON completions (created_at);
CREATE TABLE IF NOT EXISTS batch_jobs (
    id             TEXT PRIMARY KEY,
    keyset         TEXT NOT NULL,
    input_file_id  TEXT NOT NULL,
    status         TEXT NOT NULL,
    n_requests     INTEGER NOT NULL,
    output_file_id TEXT,
    error_file_id  TEXT,
    ingested       INTEGER NOT NULL DEFAULT 0,
    n_errors       INTEGER NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batch_jobs_keyset ON batch_jobs (keyset);
CREATE TABLE IF NOT EXISTS batch_requests (
    batch_id TEXT NOT NULL,
    key      TEXT NOT NULL,
    meta     TEXT NOT NULL,
    PRIMARY KEY (batch_id, key)
);
"""


@dataclass(frozen=True)
class Completion:
    """One answer. Token counts are the endpoint's ``usage``; ``latency_s`` is wall seconds of the call that
    produced it (0.0 for Batch API answers)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    model: str  # the model name the endpoint reported
    latency_s: float


@dataclass(frozen=True)
class BatchJob:
    """A Batch API job as the journal last saw it."""

    id: str
    keyset: str
    input_file_id: str
    status: str
    n_requests: int
    output_file_id: str | None
    error_file_id: str | None
    ingested: bool
    n_errors: int
    created_at: float
    updated_at: float


class Journal:
    """SQLite (WAL mode) journal of LLM answers keyed by request key. Every answer is committed here before it
    is used."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # isolation_level=None: autocommit, so each INSERT is committed when execute() returns.
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a killed process (only an OS crash may drop the last commits).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)
        self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # -- answers --------------------------------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        """The journaled answers for those of ``keys`` that have one (missing keys are simply absent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens, finish_reason, model, latency_s "
                    f"FROM completions WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, text, p_tok, c_tok, finish, model, latency in rows:
                    found[key] = Completion(text, int(p_tok), int(c_tok), finish, model, float(latency))
        return found

    def record(self, key: str, completion: Completion, *, meta: Mapping[str, Any]) -> None:
        """Insert ``completion`` under ``key`` (a key already present is left unchanged) and commit before
        returning. ``meta`` is small JSON: task, mode, label, sample index, model, cost_usd, …"""
        self.record_many([(key, completion, meta)])

    def record_many(self, entries: Iterable[tuple[str, Completion, Mapping[str, Any]]]) -> None:
        """``record`` for several answers in one transaction: all of them are committed before it returns, or
        (on an error) none. A commit writes each page it touched to the WAL once, so answers that arrive
        together share that write (three to a commit: ~27 µs CPU per answer instead of ~50 µs)."""
        now = time.time()
        rows = [
            (
                key,
                completion.text,
                int(completion.prompt_tokens),
                int(completion.completion_tokens),
                completion.finish_reason,
                completion.model,
                float(completion.latency_s),
                _opt_str(meta.get("task")),
                _opt_str(meta.get("mode")),
                _opt_str(meta.get("model")),
                float(meta.get("cost_usd") or 0.0),
                json.dumps(dict(meta), sort_keys=True, ensure_ascii=False, default=str),
                now,
            )
            for key, completion, meta in entries
        ]
        if not rows:
            return
        with self._lock:
            if len(rows) == 1:  # autocommit: the INSERT is its own transaction
                self._connection().execute(_INSERT_COMPLETION, rows[0])
                return
            with self._transaction() as conn:
                conn.executemany(_INSERT_COMPLETION, rows)

    def meta(self, key: str) -> dict[str, Any] | None:
        """The ``meta`` stored with ``key``'s answer, or None when the key is not journaled."""
        with self._lock:
            row = self._connection().execute("SELECT meta FROM completions WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def count(self) -> int:
        """Number of journaled answers."""
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def stats(self) -> dict[str, Any]:
        """Totals and per-task / per-mode / per-model counts of journaled answers (cost in USD) and batch jobs
        by status."""
        with self._lock:
            conn = self._connection()
            rows, p_tok, c_tok, cost = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                "COALESCE(SUM(cost_usd), 0) FROM completions"
            ).fetchone()
            groups = [
                {
                    "task": task,
                    "mode": mode,
                    "model": model,
                    "rows": int(n),
                    "prompt_tokens": int(pt),
                    "completion_tokens": int(ct),
                    "cost_usd": float(c),
                }
                for task, mode, model, n, pt, ct, c in conn.execute(
                    "SELECT task, mode, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
                    "SUM(cost_usd) FROM completions GROUP BY task, mode, model ORDER BY task, mode, model"
                )
            ]
            batches = dict(conn.execute("SELECT status, COUNT(*) FROM batch_jobs GROUP BY status").fetchall())

        def by(field: str) -> dict[str, int]:
            counts: dict[str, int] = {}
            for group in groups:
                name = str(group[field])
                counts[name] = counts.get(name, 0) + group["rows"]
            return counts

        return {
            "rows": int(rows),
            "prompt_tokens": int(p_tok),
            "completion_tokens": int(c_tok),
            "cost_usd": float(cost),
            "by_task": by("task"),
            "by_mode": by("mode"),
            "by_model": by("model"),
            "groups": groups,
            "batch_jobs": {str(k): int(v) for k, v in batches.items()},
        }

    def prune(
        self, *, task: str | None = None, model: str | None = None, older_than_days: float | None = None
    ) -> int:
        """Delete journaled answers matching every given filter (no filter: all of them); return how many.
        ``model`` matches the reported or the requested model name."""
        clauses: list[str] = []
        args: list[Any] = []
        if task is not None:
            clauses.append("task = ?")
            args.append(task)
        if model is not None:
            clauses.append("(model = ? OR requested_model = ?)")
            args += [model, model]
        if older_than_days is not None:
            clauses.append("created_at < ?")
            args.append(time.time() - older_than_days * 86400.0)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            cursor = self._connection().execute(f"DELETE FROM completions{where}", args)
            return int(cursor.rowcount)

    # -- batch jobs -----------------------------------------------------------------------------------------

    def save_batch(
        self,
        batch_id: str,
        *,
        keyset: str,
        input_file_id: str,
        status: str,
        requests_meta: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Persist a submitted batch job and the keys (with their meta) it carries, in one transaction."""
        now = time.time()
        with self._lock, self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO batch_jobs (id, keyset, input_file_id, status, n_requests, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (batch_id, keyset, input_file_id, status, len(requests_meta), now, now),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO batch_requests (batch_id, key, meta) VALUES (?, ?, ?)",
                [
                    (batch_id, key, json.dumps(dict(meta), sort_keys=True, ensure_ascii=False, default=str))
                    for key, meta in requests_meta.items()
                ],
            )

    def update_batch(
        self,
        batch_id: str,
        *,
        status: str,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        ingested: bool | None = None,
        n_errors: int | None = None,
    ) -> None:
        """Record a batch job's latest status (and, once ingested, its files and error count)."""
        with self._lock:
            self._connection().execute(
                "UPDATE batch_jobs SET status = ?, output_file_id = COALESCE(?, output_file_id), "
                "error_file_id = COALESCE(?, error_file_id), ingested = COALESCE(?, ingested), "
                "n_errors = COALESCE(?, n_errors), updated_at = ? WHERE id = ?",
                (
                    status,
                    output_file_id,
                    error_file_id,
                    None if ingested is None else int(ingested),
                    n_errors,
                    time.time(),
                    batch_id,
                ),
            )

    def get_batch(self, batch_id: str) -> BatchJob | None:
        with self._lock:
            row = self._connection().execute(f"{_BATCH_SELECT} WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else _batch_job(row)

    def find_batch(self, keyset: str) -> BatchJob | None:
        """The most recent batch job submitted for ``keyset`` (a hash of the requested keys), if any."""
        with self._lock:
            row = (
                self._connection()
                .execute(
                    f"{_BATCH_SELECT} WHERE keyset = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    (keyset,),
                )
                .fetchone()
            )
        return None if row is None else _batch_job(row)

    def batch_jobs(self) -> list[BatchJob]:
        with self._lock:
            rows = self._connection().execute(f"{_BATCH_SELECT} ORDER BY created_at").fetchall()
        return [_batch_job(row) for row in rows]

    def batch_request_meta(self, batch_id: str) -> dict[str, dict[str, Any]]:
        """key → meta for every request a batch job carries."""
        with self._lock:
            rows = (
                self._connection()
                .execute("SELECT key, meta FROM batch_requests WHERE batch_id = ?", (batch_id,))
                .fetchall()
            )
        return {key: json.loads(meta) for key, meta in rows}

    # -- lifecycle ------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"journal {self.path} is closed")
        return self._conn

    def _transaction(self) -> _Transaction:
        return _Transaction(self._connection())


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


_INSERT_COMPLETION = (
    "INSERT OR IGNORE INTO completions (key, text, prompt_tokens, completion_tokens, finish_reason, model, "
    "latency_s, task, mode, requested_model, cost_usd, meta, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_BATCH_SELECT = (
    "SELECT id, keyset, input_file_id, status, n_requests, output_file_id, error_file_id, ingested, "
    "n_errors, created_at, updated_at FROM batch_jobs"
)


def _batch_job(row: tuple[Any, ...]) -> BatchJob:
    job_id, keyset, input_file_id, status, n, out_id, err_id, ingested, n_errors, created, updated = row
    return BatchJob(
        job_id,
        keyset,
        input_file_id,
        status,
        int(n),
        out_id,
        err_id,
        bool(ingested),
        int(n_errors),
        created,
        updated,
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
