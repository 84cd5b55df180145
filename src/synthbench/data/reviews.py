"""The decision store: a person's verdicts on synthetic rows, one JSON line per reviewed text.

``data/review/<task>/<mode>.jsonl`` (:meth:`synthbench.layout.Layout.review`) is small and git-tracked. Each line
is keyed by :func:`content_hash` of the row's text (whitespace collapsed, case folded), so a verdict follows the
text through a regeneration that reorders or re-creates the file. Lines are sorted by that hash and every
decision rewrites the file atomically (temp file, fsync, rename, fsync of the folder): a crash or ``kill -9``
loses no decision already acknowledged, and two reviews of the same sample diff line by line.

A line::

    {"hash": "3f0c…", "label": "fresh", "verdict": "wrong_label", "relabel": "rotten", "text": "…", "at": "…"}

``label`` is the row's intended label when it was judged; ``relabel`` is set only with ``wrong_label``.
How verdicts act on training rows (:func:`apply_decisions`):

=================  ==============================================================================
``ok``             kept
``wrong_label``    relabelled to ``relabel`` when one was chosen, else dropped — only while the row
                   still carries the label that was judged wrong
``off_task``       dropped (the text does not belong to the task at all)
``unnatural``      dropped (no person would write it)
=================  ==============================================================================
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from synthbench.data.io import atomic_open
from synthbench.errors import DataError

OK, WRONG_LABEL, OFF_TASK, UNNATURAL = "ok", "wrong_label", "off_task", "unnatural"
VERDICTS = (OK, WRONG_LABEL, OFF_TASK, UNNATURAL)
REJECTS = (WRONG_LABEL, OFF_TASK, UNNATURAL)
_HASH_CHARS = 16  # 64 bits: no collision in any synthetic set this tool will ever see, and short in a diff


def normalize_text(text: str) -> str:
    """The same "same text" rule as training's de-duplication: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


def content_hash(text: str) -> str:
    """A row's key in the store: the first 16 hex digits of SHA-256 of :func:`normalize_text`."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:_HASH_CHARS]


@dataclass(frozen=True)
class Decision:
    """One verdict on one text."""

    hash: str
    label: str  # the row's intended label when it was judged
    verdict: str  # one of VERDICTS
    relabel: str | None = None  # the right label (wrong_label only); None = drop the row
    text: str = ""  # a copy for human readers of the diff; the hash is the key
    at: str = ""  # ISO-8601 UTC time of the decision

    @property
    def rejects(self) -> bool:
        return self.verdict in REJECTS


def _decision(row: Any, labels: Sequence[str] | None, where: str) -> Decision:
    """Validate one parsed line; anything unexpected is a DataError naming the line and the fix."""
    fix = "fix or delete that line (git diff/checkout shows what changed)"
    if not isinstance(row, dict):
        raise DataError(f"{where}: a review line must be a JSON object; {fix}")
    missing = [key for key in ("hash", "label", "verdict") if not isinstance(row.get(key), str)]
    if missing:
        raise DataError(f"{where}: missing or non-text field(s) {missing}; {fix}")
    if row["verdict"] not in VERDICTS:
        raise DataError(f"{where}: verdict {row['verdict']!r} is not one of {list(VERDICTS)}; {fix}")
    relabel = row.get("relabel")
    if relabel is not None and (row["verdict"] != WRONG_LABEL or not isinstance(relabel, str)):
        raise DataError(f"{where}: 'relabel' goes only with verdict 'wrong_label'; {fix}")
    if labels is not None:
        for key in ("label", "relabel"):
            if row.get(key) is not None and row[key] not in labels:
                raise DataError(
                    f"{where}: {key} {row[key]!r} is not one of the task's labels {list(labels)}; {fix}"
                )
    return Decision(
        hash=row["hash"],
        label=row["label"],
        verdict=row["verdict"],
        relabel=relabel,
        text=str(row.get("text", "")),
        at=str(row.get("at", "")),
    )


def read_decisions(path: Path, labels: Sequence[str] | None = None) -> dict[str, Decision]:
    """The store at ``path`` as {hash: Decision}; a missing file is an empty store. A malformed line (bad JSON,
    unknown verdict, a label the task lacks, a repeated hash) raises a DataError naming the line."""
    if not path.exists():
        return {}
    decisions: dict[str, Decision] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{where}: not valid JSON ({exc.msg}); the review file is corrupted: fix that "
                    "line or restore it with git checkout"
                ) from None
            decision = _decision(row, labels, where)
            if decision.hash in decisions:
                raise DataError(f"{where}: hash {decision.hash} is reviewed twice; keep one of the two lines")
            decisions[decision.hash] = decision
    return decisions


def write_decisions(path: Path, decisions: Iterable[Decision]) -> None:
    """Write the whole store atomically, sorted by hash (stable diffs), then fsync the folder so the rename
    itself survives a power cut."""
    lines = [
        json.dumps({k: v for k, v in asdict(d).items() if v is not None}, ensure_ascii=False) + "\n"
        for d in sorted(decisions, key=lambda d: d.hash)
    ]
    with atomic_open(path) as handle:
        handle.writelines(lines)
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened for fsync
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def ensure_store(path: Path, labels: Sequence[str]) -> dict[str, Decision]:
    """Create an empty store if none exists (DVC needs the file a training stage depends on), then validate it.
    Returns its decisions."""
    if not path.exists():
        write_decisions(path, [])
    return read_decisions(path, labels)


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DecisionStore:
    """The store of one task/mode, shared by the review server's request threads. Every :meth:`record` is
    written to disk before it returns."""

    def __init__(self, path: Path, labels: Sequence[str]) -> None:
        self.path = path
        self.labels = list(labels)
        self._lock = threading.Lock()
        self._decisions = read_decisions(path, self.labels)

    def all(self) -> dict[str, Decision]:
        with self._lock:
            return dict(self._decisions)

    def record(
        self, text: str, label: str, verdict: str | None, relabel: str | None = None
    ) -> Decision | None:
        """Set (or, with ``verdict=None``, clear) the decision on ``text``; returns the stored decision. Raises
        DataError for an unknown verdict or label (the server answers 400)."""
        if verdict is not None and verdict not in VERDICTS:
            raise DataError(f"unknown verdict {verdict!r}: one of {list(VERDICTS)}")
        if (
            verdict == WRONG_LABEL
            and relabel is not None
            and (relabel not in self.labels or relabel == label)
        ):
            raise DataError(f"cannot relabel a {label!r} row to {relabel!r}: choose another of {self.labels}")
        key = content_hash(text)
        with self._lock:
            if verdict is None:
                self._decisions.pop(key, None)
                decision = None
            else:
                if verdict != WRONG_LABEL:
                    relabel = None
                decision = _decision(
                    {
                        "hash": key,
                        "label": label,
                        "verdict": verdict,
                        "relabel": relabel,
                        "text": text,
                        "at": now_iso(),
                    },
                    self.labels,
                    "decision",
                )
                self._decisions[key] = decision
            write_decisions(self.path, self._decisions.values())
        return decision


def reviewed_label(label: str, decision: Decision | None) -> str | None:
    """The label a row labelled ``label`` trains with after ``decision`` (see the module docstring); None =
    the row is dropped."""
    if decision is None or decision.verdict == OK:
        return label
    if decision.verdict == WRONG_LABEL:
        # judged under another label (the text was regenerated for a different one): the verdict does not apply
        return label if decision.label != label else decision.relabel
    return None  # off_task / unnatural: properties of the text, whatever its label


def apply_decisions(rows: list[tuple[str, str]], decisions: dict[str, Decision]) -> list[tuple[str, str]]:
    """(text, label) rows with the verdicts applied; order kept."""
    out = []
    for text, label in rows:
        new_label = reviewed_label(label, decisions.get(content_hash(text)))
        if new_label is not None:
            out.append((text, new_label))
    return out


def apply_review(rows: list[tuple[str, str]], path: Path, labels: Sequence[str]) -> list[tuple[str, str]]:
    """Training's one call: ``rows`` of a synthetic file with the verdicts in ``path`` applied; without a
    review file (or with an empty one) the rows come back unchanged."""
    decisions = read_decisions(path, labels)
    return apply_decisions(rows, decisions) if decisions else rows
