"""The analyze stage's own knobs (``params.yaml`` section ``analysis``), read duck-typed from ``Params``.

``Params`` gains an ``analysis`` section in ``config.py``; until it does (or when a params file omits it) every
setting takes its default below, so ``run_analyze`` works on any valid params file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthbench.errors import ConfigError


class AnalysisSettings(BaseModel):
    """What the report analyses beyond Table 1. Paths are relative to the project root."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comparisons_csv: str | None = Field(
        default=None,
        description="Pairwise task comparisons (task_a,task_b,winner[,annotator]; winner = the MORE subjective "
        "task) → Bradley–Terry subjectivity. null: the stars in the task registry.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="task → multi-annotator file of its test texts (CSV/JSONL): columns text + agreement, "
        "or text,annotator,label (one row per vote), or text + annotator_* columns (one per annotator).",
    )
    thresholds: list[float] | None = Field(
        default=None,
        description="Agreement thresholds γ for the instance-level curves; null: every agreement value seen.",
    )
    diversity: bool = Field(default=True, description="Embed real and synthetic train sets for diversity.")
    embedding_model: str | None = Field(
        default=None, description="sentence-transformers id or folder; null: the bundled all-MiniLM-L6-v2."
    )

    def resolve(self, path: str, root: Path) -> Path:
        """A settings path as a real path: absolute ones as given, others relative to ``root``."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else root / candidate


def analysis_settings(params: Any) -> AnalysisSettings:
    """The ``analysis`` section of ``params`` (a pydantic model, a mapping, or absent) as AnalysisSettings.

    Raises:
        ConfigError: the section has an unknown key or a wrong type (one line naming the key).
    """
    section = getattr(params, "analysis", None)
    if section is None:
        return AnalysisSettings()
    if isinstance(section, AnalysisSettings):
        return section
    raw = section.model_dump() if isinstance(section, BaseModel) else dict(section)
    try:
        return AnalysisSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in ("analysis", *first["loc"]))
        raise ConfigError(f"params key {key!r}: {first['msg']}; fix it in params.yaml") from None
