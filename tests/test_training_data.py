"""Training data: conditions (real, modes, real+<mode>, real_n<N>), decontamination against the test set,
validation splits, and the one-line errors bad input gets — through ``run_train`` where the stage decides."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from factories import train_stage
from synthbench.config import Params
from synthbench.data.sampling import stratified_subsample, validation_split
from synthbench.data.text import text_key
from synthbench.errors import ConfigError, DataError, TrainingError
from synthbench.layout import Layout
from synthbench.training.data import build_training_data, parse_condition

TASK = "rotten_tomatoes"  # built-in spec; labels fresh, rotten. The tests write their own tiny data files.
LABELS = ["fresh", "rotten"]
FRESH = [
    "a wonderful, moving film",
    "brilliant acting and a sharp script",
    "funny and warm throughout",
    "a triumph of a movie",
    "delightful from start to end",
    "smart, tender and true",
    "the best comedy this year",
    "gorgeous and heartfelt",
    "a joy to watch",
    "clever and kind",
]
ROTTEN = [
    "a dull, lifeless mess",
    "boring and far too long",
    "the plot makes no sense",
    "a tedious waste of time",
    "flat jokes and bad acting",
    "clumsy, loud and empty",
    "the worst film of the year",
    "tiresome and predictable",
    "a chore to sit through",
    "smug and hollow",
]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows), encoding="utf-8"
    )
    return path


def write_tiny_task(root: Path, synthetic: dict[str, list[tuple[str, str]]] | None = None) -> dict[str, list]:
    """12 real train rows, 6 real test rows (the last 3 of each label) and the given synthetic files."""
    train = [(t, "fresh") for t in FRESH[:6]] + [(t, "rotten") for t in ROTTEN[:6]]
    test = [(t, "fresh") for t in FRESH[7:]] + [(t, "rotten") for t in ROTTEN[7:]]
    write_jsonl(root / "data/real" / TASK / "train.jsonl", train)
    write_jsonl(root / "data/real" / TASK / "test.jsonl", test)
    for mode, rows in (synthetic or {}).items():
        write_jsonl(root / "data/synthetic" / TASK / f"{mode}.jsonl", rows)
    return {"train": train, "test": test}


def tiny_params(root: Path, **train: object) -> Params:
    return Params.model_validate(
        {
            "tasks": [TASK],
            "train": {"epochs": 1, "batch_size": 4, "max_length": 32, **train},
            "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "synthbench-tests"},
        }
    )


def test_parse_condition_knows_modes_mixes_and_learning_curve_sizes() -> None:
    assert parse_condition("real").sources == ("real",)
    assert parse_condition("few_shot").sources == ("few_shot",)
    assert parse_condition("real+zero_shot").sources == ("real", "zero_shot")
    curve = parse_condition("real_n50")
    assert curve.sources == ("real",) and curve.subsample == 50
    with pytest.raises(ConfigError, match=r"unknown condition 'rael'.*real\+<mode> or real_n<N>"):
        parse_condition("rael")


def test_mix_is_real_rows_then_synthetic_rows_without_repeats(tmp_path: Path) -> None:
    synthetic = [
        ("A  wonderful, MOVING film", "fresh"),
        ("an original synthetic rave", "fresh"),
        ("an original synthetic pan", "rotten"),
    ]
    tiny = write_tiny_task(tmp_path, {"zero_shot": synthetic})
    data = build_training_data(
        TASK, "real+zero_shot", LABELS, [t for t, _ in tiny["test"]], 0, Layout(tmp_path)
    )
    # the first synthetic text repeats a real one (up to case and spaces): the real row wins
    assert data.rows == tiny["train"] + synthetic[1:]
    assert data.origins == ["real"] * 12 + ["zero_shot"] * 2
    assert data.removed == {"test_overlap": 0, "duplicates": 1}
    assert [s.name for s in data.sources] == ["real", "zero_shot"]
    assert data.digest == "+".join(s.md5 for s in data.sources)


def test_learning_curve_samples_are_stratified_nested_and_deterministic() -> None:
    rows = [(f"text {i}", "fresh" if i % 4 else "rotten") for i in range(200)]  # 150 fresh, 50 rotten
    samples = {n: stratified_subsample(rows, n, seed=0) for n in (8, 20, 50, 100, 200, 500)}
    for n, sample in samples.items():
        assert len(sample) == min(n, 200)
        counts = Counter(label for _, label in sample)
        assert abs(counts["rotten"] - len(sample) / 4) <= 2 and counts["rotten"] >= 2
        assert sample == [row for row in rows if row in set(sample)]  # source order kept
    for small, large in ((8, 20), (20, 50), (50, 100), (100, 200)):
        assert set(samples[small]) <= set(samples[large])
    assert stratified_subsample(rows, 50, seed=0) == samples[50]
    assert stratified_subsample(rows, 50, seed=1) != samples[50]


def test_learning_curve_size_below_two_per_label_is_a_data_error() -> None:
    rows = [(f"text {i}", label) for i, label in enumerate(["a", "b", "c"] * 10)]
    with pytest.raises(DataError, match=r"size 5 is too small for 3 labels.*train.learning_curve_sizes"):
        stratified_subsample(rows, 5, seed=0)


def test_real_n_condition_records_requested_and_used_sizes(tmp_path: Path) -> None:
    tiny = write_tiny_task(tmp_path)
    test_texts = [t for t, _ in tiny["test"]]
    data = build_training_data(TASK, "real_n6", LABELS, test_texts, 0, Layout(tmp_path))
    assert len(data.rows) == 6 and Counter(lab for _, lab in data.rows) == {"fresh": 3, "rotten": 3}
    assert data.subsample == {"requested": 6, "available": 12, "used": 6}
    everything = build_training_data(TASK, "real_n1000", LABELS, test_texts, 0, Layout(tmp_path))
    assert everything.rows == tiny["train"] and everything.subsample["used"] == 12


def test_validation_split_never_contains_test_texts(tmp_path: Path) -> None:
    test_texts = [t for t in FRESH[7:]] + [t for t in ROTTEN[7:]]
    # an LLM can reproduce a test text verbatim or with other case/spacing: all three must go
    leaked = [(FRESH[7], "fresh"), (" " + FRESH[8].upper(), "fresh"), (ROTTEN[9] + "  ", "rotten")]
    synthetic = (
        leaked
        + [(f"synthetic rave {i}", "fresh") for i in range(5)]
        + [(f"synthetic pan {i}", "rotten") for i in range(5)]
    )
    write_tiny_task(tmp_path, {"few_shot": synthetic})
    banned = {text_key(t) for t in test_texts}
    for condition in ("few_shot", "real+few_shot", "real"):
        data = build_training_data(TASK, condition, LABELS, test_texts, 0, Layout(tmp_path))
        for seed in range(5):
            train, val = validation_split(data.rows, 0.3, seed)
            assert val and not {text_key(t) for t, _ in val} & banned
            assert not {text_key(t) for t, _ in train} & banned
        assert data.removed["test_overlap"] == (0 if condition == "real" else 3)


def test_validation_split_is_stratified_deterministic_and_disjoint() -> None:
    rows = [(f"text {i}", "fresh" if i % 2 else "rotten") for i in range(40)]
    train, val = validation_split(rows, 0.25, seed=3)
    assert Counter(lab for _, lab in val) == {"fresh": 5, "rotten": 5}
    assert not set(train) & set(val) and len(train) + len(val) == 40
    assert validation_split(rows, 0.25, seed=3) == (train, val)


def test_unknown_condition_is_a_config_error_through_run_train(tmp_path: Path) -> None:
    write_tiny_task(tmp_path)
    with pytest.raises(ConfigError, match="unknown condition 'rael'"):
        train_stage(TASK, "rael", "minilm-l6", tiny_params(tmp_path), tmp_path)


def test_too_few_examples_to_split_is_a_training_error(tmp_path: Path) -> None:
    write_tiny_task(tmp_path, {"zero_shot": [("one rave", "fresh"), ("one pan", "rotten")]})
    with pytest.raises(TrainingError) as caught:
        train_stage(TASK, "zero_shot", "minilm-l6", tiny_params(tmp_path), tmp_path)
    message = str(caught.value)
    assert "too few examples to split (2 rows)" in message and "generate.per_label" in message
    assert "\n" not in message
    assert not (tmp_path / "mlflow.db").exists()  # nothing was logged for a run that could not start


def test_training_data_without_a_test_label_is_a_data_error(tmp_path: Path) -> None:
    write_tiny_task(tmp_path, {"zero_shot": [(f"rave {i}", "fresh") for i in range(6)]})
    with pytest.raises(DataError) as caught:
        train_stage(TASK, "zero_shot", "minilm-l6", tiny_params(tmp_path), tmp_path)
    message = str(caught.value)
    assert "zero_shot.jsonl" in message and "no training rows for label(s) ['rotten']" in message
    assert "generate.per_label" in message and "\n" not in message


def test_training_label_outside_the_task_is_a_data_error(tmp_path: Path) -> None:
    write_tiny_task(tmp_path, {"few_shot": [("so-so", "neutral")]})
    with pytest.raises(DataError, match=r"few_shot.jsonl:1: label 'neutral' not in the task's labels"):
        train_stage(TASK, "few_shot", "minilm-l6", tiny_params(tmp_path), tmp_path)


def test_backbone_not_available_offline_is_a_training_error(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    write_tiny_task(tmp_path)
    with pytest.raises(TrainingError) as caught:
        train_stage(TASK, "real", "synthbench-tests/no-such-model", tiny_params(tmp_path), tmp_path)
    message = str(caught.value)
    assert "'synthbench-tests/no-such-model'" in message and "not available offline" in message
    assert "backbones: [minilm-l6]" in message and "\n" not in message


def test_seeds_default_to_the_single_seed_and_must_be_distinct(tmp_path: Path) -> None:
    assert tiny_params(tmp_path).train.seed_list == [0]
    assert tiny_params(tmp_path, seed=7).train.seed_list == [7]
    assert tiny_params(tmp_path, seeds=[3, 1, 2]).train.seed_list == [3, 1, 2]
    with pytest.raises(ValueError, match="seeds must be distinct"):
        tiny_params(tmp_path, seeds=[1, 1])
