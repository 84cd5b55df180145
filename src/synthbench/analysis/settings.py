"""The analyze stage's own knobs: params section ``analysis`` (:class:`synthbench.config.AnalysisParams`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from synthbench.config import AnalysisParams as AnalysisSettings
from synthbench.errors import ConfigError
from synthbench.schema import first_error

__all__ = ["AnalysisSettings", "analysis_settings"]


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
        raise ConfigError(f"params {first_error(exc, prefix='analysis')}; fix it in params.yaml") from None
