"""The Batch API's own store: jobs submitted for a key set and the keys (with their meta) each carries, so a
later run ingests a job's output instead of submitting it again. Two tables in the journal's SQLite file,
written through the journal's connection (answers themselves go to the journal)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthbench.generation.journal import Journal

_SCHEMA = """
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

_SELECT = (
    "SELECT id, keyset, input_file_id, status, n_requests, output_file_id, error_file_id, ingested, "
    "n_errors, created_at, updated_at FROM batch_jobs"
)


@dataclass(frozen=True)
class BatchJob:
    """A Batch API job as the store last saw it (times: Unix seconds)."""

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


class BatchStore:
    """Batch jobs in ``journal``'s file."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        with journal._db() as conn:
            conn.executescript(_SCHEMA)

    def save(
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
        with self.journal._db(transaction=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO batch_jobs (id, keyset, input_file_id, status, n_requests, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (batch_id, keyset, input_file_id, status, len(requests_meta), now, now),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO batch_requests (batch_id, key, meta) VALUES (?, ?, ?)",
                [
                    (batch_id, key, json.dumps(dict(meta), sort_keys=True, default=str))
                    for key, meta in requests_meta.items()
                ],
            )

    def update(
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
        with self.journal._db() as conn:
            conn.execute(
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

    def get(self, batch_id: str) -> BatchJob | None:
        with self.journal._db() as conn:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else _job(row)

    def find(self, keyset: str) -> BatchJob | None:
        """The most recent batch job submitted for ``keyset`` (a hash of the requested keys), if any."""
        with self.journal._db() as conn:
            row = conn.execute(
                f"{_SELECT} WHERE keyset = ? ORDER BY created_at DESC, rowid DESC LIMIT 1", (keyset,)
            ).fetchone()
        return None if row is None else _job(row)

    def jobs(self) -> list[BatchJob]:
        with self.journal._db() as conn:
            return [_job(row) for row in conn.execute(f"{_SELECT} ORDER BY created_at").fetchall()]

    def request_meta(self, batch_id: str) -> dict[str, dict[str, Any]]:
        """key → meta for every request a batch job carries."""
        with self.journal._db() as conn:
            rows = conn.execute(
                "SELECT key, meta FROM batch_requests WHERE batch_id = ?", (batch_id,)
            ).fetchall()
        return {key: json.loads(meta) for key, meta in rows}

    def status_counts(self) -> dict[str, int]:
        with self.journal._db() as conn:
            return {
                str(k): int(v)
                for k, v in conn.execute("SELECT status, COUNT(*) FROM batch_jobs GROUP BY status")
            }


def _job(row: tuple[Any, ...]) -> BatchJob:
    job_id, keyset, input_id, status, n, out_id, err_id, ingested, n_errors, created, updated = row
    return BatchJob(
        job_id,
        keyset,
        input_id,
        status,
        int(n),
        out_id,
        err_id,
        bool(ingested),
        int(n_errors),
        created,
        updated,
    )
