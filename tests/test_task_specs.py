"""Built-in task specs: they load, their prompts format, and their labels match the real data."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from synthbench.errors import ConfigError
from synthbench.tasks import load_task
from synthbench.tasks.registry import builtin_tasks, load_task_file

PAPER_TASKS = [
    "ag_news",
    "relation_classification",
    "imdb",
    "sms_spam",
    "financial_phrasebank",
    "reddit_emotions",
    "tweet_irony",
    "tweet_emotions",
    "sarcasm_news",
    "humor_speech",
]
OFFLINE_TASKS = ["bbc_news", "rotten_tomatoes"]
ALL_TASKS = PAPER_TASKS + OFFLINE_TASKS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Every field any prompt template may use; str.format ignores the ones a template does not name.
PROMPT_FIELDS = {
    "label_instruction": "a news article about sports",
    "label": "Sports",
    "style": "a named person",
    "length_words": 50,
    "examples": "1. first example\n2. second example",
    "previous": "- an earlier text",
}


def test_builtin_tasks_lists_all_twelve() -> None:
    assert sorted(builtin_tasks()) == sorted(ALL_TASKS)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_builtin_spec_loads(name: str) -> None:
    spec = load_task(name)
    assert spec.name == name
    assert len(spec.labels) >= 2
    assert all(label.description.strip() for label in spec.labels)


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_paper_spec_source_and_prompt(name: str) -> None:
    spec = load_task(name)
    assert spec.source.kind == "hub" and spec.source.path
    assert "train" in spec.source.splits
    # every label has a prompt instruction, and label_map covers exactly the label names
    assert all(label.instruction for label in spec.labels)
    assert sorted(set(spec.source.label_map.values())) == sorted(spec.label_names)
    assert len(spec.source.label_map) == len(spec.labels)
    assert 6 <= len(spec.prompt.styles) <= 12
    assert len(set(spec.prompt.styles)) == len(spec.prompt.styles)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_prompt_templates_format(name: str) -> None:
    prompt = load_task(name).prompt
    for label in load_task(name).labels:
        for style in prompt.styles:
            fields = dict(PROMPT_FIELDS, label_instruction=label.prompt_phrase, label=label.name, style=style)
            fields["length_words"] = prompt.length_words
            text = prompt.generation.format(**fields)
            assert label.prompt_phrase in text or label.name in text
            assert "{" not in text and "}" not in text
    prompt.few_shot.format(**PROMPT_FIELDS)
    prompt.diversity.format(**PROMPT_FIELDS)


def test_subjectivity_defaults_follow_paper_order() -> None:
    stars = {name: load_task(name).subjectivity for name in PAPER_TASKS}
    assert stars["ag_news"] == min(stars.values())
    assert stars["humor_speech"] == max(stars.values())
    assert stars["ag_news"] < stars["imdb"] < stars["tweet_irony"] < stars["sarcasm_news"]


def _csv_labels(path: Path) -> set[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["label"] for row in csv.DictReader(handle)}


@pytest.mark.parametrize("name", PAPER_TASKS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_labels_match_shared_data(name: str, split: str) -> None:
    path = SHARED_DATA / name / f"{split}.csv"
    if not path.exists():
        pytest.skip(f"{path} not available")
    assert set(load_task(name).label_names) == _csv_labels(path)


def test_unknown_task_suggests_close_name() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'ag_news'"):
        load_task("ag_new")


def test_unknown_task_without_close_match_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"known tasks: .*imdb"):
        load_task("zzzz_no_such_task")


def _good_spec() -> dict:
    return {
        "name": "my_task",
        "description": "A custom task.",
        "subjectivity": 2,
        "labels": [
            {"name": "yes", "description": "it is"},
            {"name": "no", "description": "it is not"},
        ],
        "source": {"kind": "local", "files": {"train": "train.csv", "test": "test.csv"}},
        "prompt": {"context": "You write things.", "generation": "Write {label_instruction} about {style}."},
    }


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "my_task.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_custom_spec_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, _good_spec())
    spec = load_task("my_task", custom={"my_task": str(path)})
    assert spec.label_names == ["yes", "no"]


def test_custom_spec_missing_field_names_file_and_key(tmp_path: Path) -> None:
    data = _good_spec()
    del data["prompt"]
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_task("my_task", custom={"my_task": str(path)})
    message = str(info.value)
    assert str(path) in message and "prompt" in message


def test_custom_spec_missing_nested_field_names_key(tmp_path: Path) -> None:
    data = _good_spec()
    del data["prompt"]["generation"]
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=r"prompt\.generation"):
        load_task_file(path)


@pytest.mark.parametrize(
    "labels",
    [
        [{"name": "only", "description": "one label"}],
        [{"name": "same", "description": "a"}, {"name": "same", "description": "b"}],
        [{"name": "yes"}, {"name": "no", "description": "it is not"}],
        "yes, no",
    ],
    ids=["one-label", "duplicate", "no-description", "not-a-list"],
)
def test_custom_spec_bad_labels_names_file_and_key(tmp_path: Path, labels: object) -> None:
    data = _good_spec()
    data["labels"] = labels
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_task_file(path)
    message = str(info.value)
    assert str(path) in message and "labels" in message


def test_custom_spec_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_task_file(path)
