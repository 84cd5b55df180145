"""The LLM answer journal: every answer an endpoint gives is committed here, keyed by its request key, before
anything uses it. A crash, ``kill -9`` or Ctrl-C loses at most the answers still in flight; a re-run asks only
for the keys the journal lacks.

One SQLite file in WAL mode (readers never block the writer; a commit survives a killed process):

- ``completions``: one row per request key (text, token counts, finish reason, reported model, latency, cost
  and the caller's ``meta`` as JSON). Text that UTF-8 cannot hold (lone surrogates from a JSON ``\\ud800``) is
  kept losslessly in ``text_raw`` (UTF-8 with surrogatepass) beside a printable copy;
- ``leases``: keys a process is asking the endpoint for right now, with the owner (host, pid, process start
  time). Another process does not send a leased key while its owner lives; a dead owner's lease is taken over.
  So two ``generate`` runs (or queued ``dvc exp`` runs sharing one journal file) pay each request once.

The Batch API's jobs live in their own store (:mod:`synthbench.generation.batch_store`), in the same file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from synthbench.errors import JournalError
from synthbench.generation.leases import owner_alive, process_owner

SCHEMA_VERSION = 2
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
CREATE TABLE IF NOT EXISTS leases (
    key        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    claimed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_owner ON leases (owner);
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


def _encode_text(text: str) -> tuple[str, bytes | None]:
    """(storable text, raw UTF-8 with surrogatepass or None): SQLite stores UTF-8, which lone surrogates are not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8"), text.encode("utf-8", "surrogatepass")
    return text, None


def _decode_text(text: str, raw: bytes | None) -> str:
    return text if raw is None else bytes(raw).decode("utf-8", "surrogatepass")


@contextlib.contextmanager
def _opening(path: Path) -> Iterator[None]:
    """An exclusive lock (``<journal>.lock``, flock) held while a journal is opened and its schema written, so
    a 0-byte file seen under it is a truncated journal, not one another process is creating."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_sqlite(path: Path) -> sqlite3.Connection:
    """The journal file opened in WAL mode with our schema; a file that is not a usable journal (0 bytes after
    a truncation, corrupt, unreadable) is a JournalError naming it and the fix."""
    fix = (
        f"run `synthbench cache check --salvage` to keep what can be read, or move {path} away to start over"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _opening(path):
            if path.is_file() and path.stat().st_size == 0:
                raise JournalError(
                    f"{path}: the journal is empty (0 bytes; truncated?) and would repay every answer; {fix}"
                )
            # isolation_level=None: autocommit, so each INSERT is committed when execute() returns.
            conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a killed process (only an OS crash may drop the last ones).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(completions)")}
            if "text_raw" not in columns:  # journals of schema 1 gain the lossless column; their keys stay
                conn.execute("ALTER TABLE completions ADD COLUMN text_raw BLOB")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except (sqlite3.DatabaseError, OSError) as exc:
        raise JournalError(f"{path}: not a usable journal ({exc}); {fix}") from None
    return conn


class Journal:
    """SQLite (WAL mode) journal of LLM answers keyed by request key. Every answer is committed here before it
    is used."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = open_sqlite(self.path)
        self.owner = process_owner()

    # -- answers --------------------------------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        """The journaled answers for those of ``keys`` that have one (missing keys are simply absent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        with self._db() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT key, text, text_raw, prompt_tokens, completion_tokens, finish_reason, model, "
                    f"latency_s FROM completions WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, text, raw, p_tok, c_tok, finish, model, latency in rows:
                    found[key] = Completion(
                        _decode_text(text, raw), int(p_tok), int(c_tok), finish, model, float(latency)
                    )
        return found

    def record(self, key: str, completion: Completion, *, meta: Mapping[str, Any]) -> None:
        """Insert ``completion`` under ``key`` (a key already present is left unchanged) and commit before
        returning. ``meta`` is small JSON: task, mode, label, sample index, model, cost_usd, …"""
        self.record_many([(key, completion, meta)])

    def record_many(self, entries: Iterable[tuple[str, Completion, Mapping[str, Any]]]) -> None:
        """``record`` for several answers in one transaction, releasing their leases: all of them are committed
        before it returns, or (on an error) none. A commit writes each page it touched to the WAL once, so
        answers that arrive together share that write (~27 µs CPU per answer instead of ~50 µs)."""
        now = time.time()
        rows = []
        for key, completion, meta in entries:
            text, raw = _encode_text(completion.text)
            rows.append(
                (
                    key,
                    text,
                    raw,
                    int(completion.prompt_tokens),
                    int(completion.completion_tokens),
                    completion.finish_reason,
                    completion.model,
                    float(completion.latency_s),
                    _opt_str(meta.get("task")),
                    _opt_str(meta.get("mode")),
                    _opt_str(meta.get("model")),
                    float(meta.get("cost_usd") or 0.0),
                    json.dumps(dict(meta), sort_keys=True, default=str),  # ASCII: any text survives
                    now,
                )
            )
        if not rows:
            return
        with self._db(transaction=True) as conn:
            conn.executemany(_INSERT_COMPLETION, rows)
            conn.executemany("DELETE FROM leases WHERE key = ?", [(row[0],) for row in rows])

    def meta(self, key: str) -> dict[str, Any] | None:
        """The ``meta`` stored with ``key``'s answer, or None when the key is not journaled."""
        with self._db() as conn:
            row = conn.execute("SELECT meta FROM completions WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def count(self) -> int:
        """Number of journaled answers."""
        with self._db() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    # -- leases ---------------------------------------------------------------------------------------------

    def claim(self, keys: Sequence[str]) -> tuple[list[str], list[str]]:
        """Lease those of ``keys`` that are neither journaled nor leased by a live process (a dead owner's lease
        is taken over). Returns (claimed, held by others). One IMMEDIATE transaction: two processes never
        claim the same key."""
        wanted = list(dict.fromkeys(keys))
        claimed: list[str] = []
        held: list[str] = []
        now = time.time()
        with self._db(transaction=True) as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                done = {
                    k for (k,) in conn.execute(f"SELECT key FROM completions WHERE key IN ({marks})", chunk)
                }
                leases = {
                    k: (owner, at)
                    for k, owner, at in conn.execute(
                        f"SELECT key, owner, claimed_at FROM leases WHERE key IN ({marks})", chunk
                    )
                }
                for key in chunk:
                    if key in done:
                        continue
                    lease = leases.get(key)
                    if lease is not None and lease[0] != self.owner and owner_alive(lease[0], lease[1], now):
                        held.append(key)
                        continue
                    claimed.append(key)
            conn.executemany(
                "INSERT OR REPLACE INTO leases (key, owner, claimed_at) VALUES (?, ?, ?)",
                [(key, self.owner, now) for key in claimed],
            )
        return claimed, held

    def touch_leases(self) -> None:
        """Mark this process's leases as fresh (see ``leases.FOREIGN_LEASE_S``)."""
        with self._db() as conn:
            conn.execute("UPDATE leases SET claimed_at = ? WHERE owner = ?", (time.time(), self.owner))

    def release(self, keys: Sequence[str] | None = None) -> None:
        """Drop this process's leases (on ``keys``, or all of them)."""
        with self._db(transaction=True) as conn:
            if keys is None:
                conn.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))
            else:
                conn.executemany(
                    "DELETE FROM leases WHERE key = ? AND owner = ?", [(key, self.owner) for key in keys]
                )

    def leased_by_others(self, keys: Sequence[str]) -> list[str]:
        """Those of ``keys`` still leased by another live process and not yet journaled."""
        now = time.time()
        with self._db() as conn:
            rows = [
                row
                for start in range(0, len(keys), _CHUNK)
                for row in conn.execute(
                    "SELECT l.key, l.owner, l.claimed_at FROM leases l LEFT JOIN completions c ON c.key = l.key "
                    f"WHERE c.key IS NULL AND l.key IN ({','.join('?' * len(keys[start : start + _CHUNK]))})",
                    list(keys[start : start + _CHUNK]),
                )
            ]
        return [k for k, owner, at in rows if owner != self.owner and owner_alive(owner, at, now)]

    # -- totals and pruning ---------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Totals and per-task / per-mode / per-model counts of journaled answers (cost in USD)."""
        with self._db() as conn:
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
            leases = int(conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0])

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
            "leases": leases,
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
        with self._db() as conn:
            return int(conn.execute(f"DELETE FROM completions{where}", args).rowcount)

    # -- lifecycle ------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):  # leases of a dead owner are reclaimed anyway
                    self._conn.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))
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

    def connection(self) -> sqlite3.Connection:
        """The open connection (for the batch store, which shares the file)."""
        if self._conn is None:
            raise RuntimeError(f"journal {self.path} is closed")
        return self._conn

    @contextlib.contextmanager
    def _db(self, *, transaction: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection under the lock (in ``BEGIN IMMEDIATE … COMMIT`` when ``transaction``); a disk or file
        failure becomes a JournalError naming the file (programming errors stay what they are)."""
        with self._lock:
            conn = self.connection()
            try:
                if not transaction:
                    yield conn
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.IntegrityError)):
                    raise
                raise JournalError(
                    f"{self.path}: journal failure ({exc}); run `synthbench cache check --salvage` if it "
                    "persists"
                ) from None


_INSERT_COMPLETION = (
    "INSERT OR IGNORE INTO completions (key, text, text_raw, prompt_tokens, completion_tokens, finish_reason, "
    "model, latency_s, task, mode, requested_model, cost_usd, meta, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
