"""Training-condition names, shared by config (which lists them for DVC), training (which builds each one's
rows) and analysis (which reads the learning curve off them).

=================  ==================================================================================
``real``           the real train split
``<mode>``         a mode's synthetic rows (``zero_shot``, ``few_shot``, ``grounded``, ``attributed``, ``targeted``)
``real+<mode>``    the real rows followed by the mode's synthetic rows (a mix)
``real_n<N>``      a stratified N-row subsample of the real rows (a point of the real-data learning curve)
=================  ==================================================================================
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from synthbench.errors import ConfigError

# Every generation mode (strategy) there is: the generation package registers one strategy per name here (a test
# checks the two agree). This floor module owns the names so that config can validate params without importing
# a stage.
GENERATION_MODES = ("zero_shot", "few_shot", "grounded", "attributed", "targeted")
DEFAULT_MODES = ("zero_shot", "few_shot")  # the default study: the paper's two modes
# Modes that fit a model on the labelled real train split to generate (targeted): their rows belong next to
# ``real`` and ``real+<mode>``; "closing the zero-shot gap" would credit them with the real labels they used.
REAL_LABEL_MODES = ("targeted",)
REAL = "real"
_SUBSAMPLE = re.compile(r"^real_n(\d+)$")


@dataclass(frozen=True)
class Condition:
    """A parsed condition name: the data sources it reads (in order) and an optional real subsample size."""

    name: str
    sources: tuple[str, ...]
    subsample: int | None = None

    @property
    def is_real_only(self) -> bool:
        """``real`` or ``real_n<N>``: real rows only, i.e. a point of the real-data learning curve."""
        return self.sources == (REAL,)


def mix_condition(mode: str) -> str:
    """The name of the real + ``mode`` mix: ``real+<mode>``."""
    return f"{REAL}+{mode}"


def curve_condition(size: int) -> str:
    """The name of the ``size``-row real subsample: ``real_n<size>``."""
    return f"{REAL}_n{size}"


def unknown_mode(mode: str) -> str:
    """The one-line message for a name that is not a generation mode: the fix and the valid names."""
    close = difflib.get_close_matches(mode, GENERATION_MODES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"unknown generation mode {mode!r}{hint}; params.yaml modes (and mixes) take: "
        f"{', '.join(GENERATION_MODES)}"
    )


def parse_condition(condition: str, modes: Iterable[str] = GENERATION_MODES) -> Condition:
    """``real`` | ``<mode>`` | ``real+<mode>`` | ``real_n<N>`` → Condition; anything else is a ConfigError."""
    known = {*GENERATION_MODES, *modes}
    match = _SUBSAMPLE.match(condition)
    if match:
        return Condition(condition, (REAL,), int(match.group(1)))
    if condition == REAL or condition in known:
        return Condition(condition, (condition,))
    first, plus, second = condition.partition("+")
    if plus and first == REAL and second in known:
        return Condition(condition, (REAL, second))
    raise ConfigError(
        f"unknown condition {condition!r}; use real, a mode ({', '.join(sorted(known))}), "
        f"real+<mode> or real_n<N> (a learning-curve size)"
    )
