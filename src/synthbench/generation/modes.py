"""Generation modes by name: the registry of strategies (``params.yaml`` ``modes`` → a strategy class), and the
one way to build a mode's strategy from the generate params and prepare's real training rows, used alike by the
generate stage, the review page (which recomputes what a row's prompt showed) and the benchmarks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from synthbench.config import GenerateParams
from synthbench.data.io import read_jsonl
from synthbench.errors import ConfigError, DataError
from synthbench.generation.attributed import Attributed
from synthbench.generation.strategies import (
    FewShot,
    GenerationStrategy,
    Grounded,
    StrategyInputs,
    ZeroShot,
)
from synthbench.generation.targeted import Targeted
from synthbench.registry import Registry
from synthbench.tasks.spec import TaskSpec

# Every name here is in synthbench.conditions.GENERATION_MODES and the other way round (a test checks it).
STRATEGIES: Registry[type[GenerationStrategy]] = Registry(
    "generation mode",
    "fix --mode or params.yaml modes",
    {cls.name: cls for cls in (ZeroShot, FewShot, Grounded, Attributed, Targeted)},
)


def make_strategy(
    mode: str,
    spec: TaskSpec,
    *,
    seed: int,
    diversity_every: int,
    diversity_examples: int,
    real_by_label: Mapping[str, Sequence[str]] | None = None,
    few_shot_k: int = 3,
    few_shot_max_words: int = 60,
) -> GenerationStrategy:
    """The registered strategy ``mode`` for ``spec``; an unknown mode is a ConfigError with a "did you mean"."""
    inputs = StrategyInputs(
        seed=seed,
        diversity_every=diversity_every,
        diversity_examples=diversity_examples,
        real_by_label=real_by_label or {},
        few_shot_k=few_shot_k,
        few_shot_max_words=few_shot_max_words,
    )
    return STRATEGIES[mode].from_inputs(spec, inputs)


def strategy_from_params(
    mode: str,
    spec: TaskSpec,
    seed: int,
    generate: GenerateParams,
    real_by_label: Mapping[str, Sequence[str]] | None = None,
) -> GenerationStrategy:
    """:func:`make_strategy` with the ``generate`` params' settings: the arguments every caller must pass alike
    for a row's prompt to be recomputable."""
    return make_strategy(
        mode,
        spec,
        seed=seed,
        diversity_every=generate.diversity_every,
        diversity_examples=generate.diversity_examples,
        real_by_label=real_by_label,
        few_shot_k=generate.few_shot_k,
        few_shot_max_words=generate.few_shot_max_words,
    )


def read_real_by_label(real_train: Path) -> dict[str, list[str]]:
    """Label → texts of prepare's real training rows (file order); DataError for a file that is not
    ``{text, label}`` JSON lines."""
    try:
        rows = read_jsonl(real_train)
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DataError(
            f"{real_train}: not readable as UTF-8 JSON lines ({type(exc).__name__}); re-run prepare"
        ) from None
    by_label: dict[str, list[str]] = defaultdict(list)
    for line_no, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise DataError(f"{real_train}:{line_no}: not a {{text, label}} row; re-run prepare")
        by_label[str(row["label"])].append(row["text"])
    return dict(by_label)


def build_strategy(
    mode: str, spec: TaskSpec, seed: int, generate: GenerateParams, real_train: Path
) -> GenerationStrategy:
    """The mode's strategy as the generate stage builds it; strategies that show real texts (few-shot,
    grounded) draw from ``real_train`` (prepare's output, the training split only), which is read only for
    them. An unknown mode is a ConfigError naming ``--mode`` and the registered modes."""
    if mode not in STRATEGIES:
        raise ConfigError(f"--mode: {STRATEGIES.unknown(mode)}")
    real = read_real_by_label(real_train) if STRATEGIES[mode].reads_real else {}
    return strategy_from_params(mode, spec, seed, generate, real)
