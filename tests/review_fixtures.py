"""A tiny reviewed project on disk, shared by the review, export and browser tests: the built-in
``rotten_tomatoes`` task (labels fresh, rotten), 12 real train / 6 test rows, and synthetic files with the
provenance columns generation writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from tests.test_training_data import FRESH, ROTTEN, TASK, write_tiny_task

from synthbench.config import Params
from synthbench.layout import Layout

LABELS = ["fresh", "rotten"]
MODEL = "openai/tiny-test-model"


def synthetic_rows(mode: str, n_fresh: int = 12, n_rotten: int = 12) -> list[dict[str, Any]]:
    """Distinct synthetic texts per label, with the columns generate writes (and an oracle on a few)."""
    rows = []
    for label, words, count in (("fresh", FRESH, n_fresh), ("rotten", ROTTEN, n_rotten)):
        for index in range(count):
            row: dict[str, Any] = {
                "text": f"{mode} review {index}: {words[index % len(words)]}, number {index}",
                "label": label,
                "mode": mode,
                "model": MODEL,
                "prompt_id": f"{mode}-abc123",
                "seed": 1000 + index,
                "sample_index": index,
                "request_key": f"key-{mode}-{label}-{index}",
            }
            if index == 0:
                row["oracle_label"], row["oracle_confidence"] = label, 0.875
            if mode == "attributed":  # what GenerationStrategy.provenance adds
                row["attributes"] = {"tone": ["dry", "gushing"][index % 2], "length": "short"}
            if mode == "targeted":
                row["target"] = {
                    "hard_example": index % 3,
                    "misread_as": "rotten" if label == "fresh" else "fresh",
                }
            rows.append(row)
    return rows


def write_project(
    root: Path, modes: tuple[str, ...] = ("zero_shot", "few_shot"), per_label: int = 12
) -> Layout:
    """params.yaml + real + synthetic files (+ summary and provenance card) under ``root``."""
    write_tiny_task(root)
    layout = Layout(root)
    layout.labels(TASK).write_text(json.dumps(LABELS), encoding="utf-8")  # what prepare saves
    for mode in modes:
        rows = synthetic_rows(mode, per_label, per_label)
        path = layout.synthetic(TASK, mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        summary = {
            "task": TASK,
            "mode": mode,
            "endpoint": "openai http://127.0.0.1:9/v1",
            "model": MODEL,
            "prompt_id": f"{mode}-abc123",
            "sampling": {"temperature": 0.9, "top_p": 0.95, "max_tokens": 40},
            "seed": 0,
            "accepted_per_label": {"fresh": per_label, "rotten": per_label},
            "rejected": {"too_short": 2},
            "n_rows": len(rows),
            "client": {"prompt_tokens": 1234, "completion_tokens": 567, "cost_usd": 0.0123},
        }
        layout.synthetic_summary(TASK, mode).write_text(json.dumps(summary), encoding="utf-8")
        layout.synthetic_card(TASK, mode).write_text(
            f"# Synthetic dataset card: {TASK} / {mode}\n\n## Prompt (first request of the first label)\n\n"
            "**user**: Write a fresh movie review.\n",
            encoding="utf-8",
        )
    (root / "params.yaml").write_text(yaml.safe_dump(params_dict(root, modes)), encoding="utf-8")
    return layout


def params_dict(root: Path, modes: tuple[str, ...] = ("zero_shot", "few_shot")) -> dict[str, Any]:
    return {
        "tasks": [TASK],
        "modes": list(modes),
        "conditions": ["real", *modes],
        "train": {"epochs": 1, "batch_size": 4, "max_length": 32},
        "generate": {"few_shot_k": 2},
        "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "synthbench-tests"},
    }


def params(root: Path, modes: tuple[str, ...] = ("zero_shot", "few_shot")) -> Params:
    return Params.model_validate(params_dict(root, modes))
