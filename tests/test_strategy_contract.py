"""One contract suite for every registered generation strategy (scikit-learn's ``parametrize_with_checks`` idea):
a mode registered in ``synthbench.generation.modes.STRATEGIES`` is checked here without anyone editing a list.

The strategies are built the way the generate stage builds them (``build_strategy`` on a project layout whose
real test split holds texts with a marker word no prompt may ever contain)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synthbench.conditions import GENERATION_MODES
from synthbench.config import GenerateParams
from synthbench.data.io import write_jsonl
from synthbench.errors import ConfigError
from synthbench.generation.card import render_card
from synthbench.generation.modes import STRATEGIES, build_strategy
from synthbench.generation.strategies import GenerationStrategy, SampleSlot, request_key
from synthbench.layout import Layout
from synthbench.records import GenerationSummary
from synthbench.tasks.registry import parse_task
from synthbench.tasks.spec import TaskSpec

MODES = list(STRATEGIES)
TEST_MARKER = "zqxheldout"  # in every real test text, in no train text
SPEC_DATA: dict[str, Any] = {
    "name": "gadgets",
    "description": "gadget reviews",
    "subjectivity": 2,
    "labels": [
        {"name": "upbeat", "description": "the reviewer likes it"},
        {"name": "grim", "description": "the reviewer dislikes it"},
    ],
    "source": {"kind": "local", "files": {"train": "train.csv", "test": "test.csv"}},
    "prompt": {
        "context": "You write short gadget reviews.",
        "generation": "Write a review that is {label_instruction}, about {style}. At most {length_words} words.",
        "styles": ["a phone", "a kettle", "a drone"],
        "length_words": 30,
    },
}
SPEC = parse_task(SPEC_DATA, "contract spec")
# Train texts name no label: a label name seen near one would come from the prompt, not from the text.
TRAIN = {
    "upbeat": [f"bright sturdy widget number {i} charges quickly and feels solid in hand" for i in range(12)],
    "grim": [f"flimsy gizmo model {i} rattles overheats and drains its battery by noon" for i in range(12)],
}
TEST = [
    {"text": f"{TEST_MARKER} test review {i} of a toaster", "label": label}
    for i, label in enumerate(["upbeat", "grim"] * 5)
]
GENERATE = GenerateParams(few_shot_k=3, few_shot_max_words=6, diversity_every=4, diversity_examples=2)
SLOTS = [SampleSlot(label, index) for label in SPEC.label_names for index in range(40)]


def project(root: Path) -> Layout:
    """A prepared project: real train and test splits of the contract task."""
    layout = Layout(root)
    write_jsonl(
        layout.real("gadgets", "train"),
        [{"text": text, "label": label} for label, texts in TRAIN.items() for text in texts],
    )
    write_jsonl(layout.real("gadgets", "test"), TEST)
    return layout


def build(mode: str, root: Path, spec: TaskSpec = SPEC, seed: int = 0) -> GenerationStrategy:
    return build_strategy(mode, spec, seed, GENERATE, Layout(root).real("gadgets", "train"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project(tmp_path)
    return tmp_path


def test_registry_names_are_the_generation_modes() -> None:
    assert sorted(STRATEGIES) == sorted(GENERATION_MODES)
    assert all(STRATEGIES[mode].name == mode for mode in STRATEGIES)


def test_an_unknown_mode_names_the_option_and_a_close_match(root: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build("atributed", root)
    assert "--mode" in str(excinfo.value) and "did you mean 'attributed'" in str(excinfo.value)


@pytest.mark.parametrize("mode", MODES)
class TestEveryStrategy:
    def test_messages_are_a_system_and_user_pair_of_non_empty_strings(self, mode: str, root: Path) -> None:
        strategy = build(mode, root)
        for slot in SLOTS[:5]:
            messages = strategy.messages(slot, ["an earlier text"])
            assert [m["role"] for m in messages] == ["system", "user"]
            assert all(isinstance(m["content"], str) and m["content"].strip() for m in messages)
            assert messages[0]["content"] == SPEC.prompt.context

    def test_two_instances_built_alike_give_identical_messages(self, mode: str, root: Path) -> None:
        first, second = build(mode, root), build(mode, root)
        previous = ["first earlier text", "second earlier text", "third earlier text"]
        for slot in SLOTS:
            assert first.messages(slot, previous) == second.messages(slot, previous)
            assert first.request_seed(slot) == second.request_seed(slot)
            assert first.provenance(slot) == second.provenance(slot)

    def test_journal_keys_are_stable_across_instances_and_differ_across_indices(
        self, mode: str, root: Path
    ) -> None:
        def keys(strategy: GenerationStrategy) -> list[str]:
            return [
                request_key(
                    "gadgets",
                    mode,
                    slot,
                    "model",
                    {"temperature": 0.9, "seed": strategy.request_seed(slot)},
                    strategy.messages(slot),
                )
                for slot in SLOTS
            ]

        first = keys(build(mode, root))
        assert first == keys(build(mode, root))
        assert len(set(first)) == len(SLOTS)
        assert first != keys(build(mode, root, seed=1))

    def test_a_declared_text_format_is_asked_for_once_in_every_request(self, mode: str, root: Path) -> None:
        text_format = {"markers": [["<e1>", "</e1>", "the gadget"], ["<e2>", "</e2>", "its maker"]]}
        spec = parse_task({**SPEC_DATA, "text_format": text_format}, "marked spec")
        assert spec.text_format is not None
        strategy = build(mode, root, spec)
        for slot in SLOTS[:5]:
            user = strategy.messages(slot, ["an earlier text"])[1]["content"]
            assert user.count(spec.text_format.prompt()) == 1
        assert build(mode, root).format_prompt() is None

    def test_no_test_text_ever_reaches_a_prompt(self, mode: str, root: Path) -> None:
        strategy = build(mode, root)
        previous = [text for texts in TRAIN.values() for text in texts][:6]
        for slot in SLOTS:
            content = " ".join(m["content"] for m in strategy.messages(slot, previous))
            assert TEST_MARKER not in content
            assert not any(row["text"] in content for row in TEST)
            assert all(text in content for text in strategy.shown_texts(slot))

    def test_a_shown_text_never_stands_next_to_a_label_name(self, mode: str, root: Path) -> None:
        strategy = build(mode, root)
        for slot in SLOTS:
            lines = strategy.messages(slot)[1]["content"].splitlines()
            for text in strategy.shown_texts(slot):
                line = next(line for line in lines if text in line)
                assert not any(name in line for name in SPEC.label_names), line

    def test_shown_texts_come_from_the_train_split(self, mode: str, root: Path) -> None:
        strategy = build(mode, root)
        train = [text for texts in TRAIN.values() for text in texts]
        for slot in SLOTS:
            for shown in strategy.shown_texts(slot):
                assert any(text.startswith(shown) for text in train)

    def test_template_id_follows_the_strategy_templates_and_only_them(self, mode: str, root: Path) -> None:
        strategy = build(mode, root)
        prompt = SPEC_DATA["prompt"]
        for field in type(strategy).prompt_fields:
            changed = parse_task(
                {**SPEC_DATA, "prompt": {**prompt, field: changed_value(field, getattr(SPEC.prompt, field))}},
                "changed",
            )
            assert build(mode, root, changed).template_id() != strategy.template_id(), field
        for field in set(type(SPEC.prompt).model_fields) - set(type(strategy).prompt_fields):
            changed = parse_task(
                {**SPEC_DATA, "prompt": {**prompt, field: changed_value(field, getattr(SPEC.prompt, field))}},
                "changed",
            )
            assert build(mode, root, changed).template_id() == strategy.template_id(), field

    def test_the_card_names_and_describes_the_strategy(self, mode: str, root: Path) -> None:
        strategy = build(mode, root)
        card = render_card(summary(mode, strategy), spec=SPEC, strategy=strategy, diversity_every=4)
        assert f"| strategy | {mode} (prompt id `{strategy.template_id()}`) |" in card
        assert f"| how it prompts | {strategy.describe()} |" in card
        assert strategy.describe().startswith(mode.replace("_", "-"))


def changed_value(field: str, value: Any) -> Any:
    """A valid edit of a prompt field's value (the templates keep their placeholders)."""
    if field == "attributes":
        return {**value, "mood": ["giddy", "calm"]}
    if field == "label_attributes":
        return {**value, "upbeat": {"mood": ["giddy", "calm"]}}
    if isinstance(value, str):
        return value + " Keep it plain."
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return [*value, "a toaster"]
    raise TypeError(type(value))


def summary(mode: str, strategy: GenerationStrategy) -> GenerationSummary:
    return GenerationSummary(
        task="gadgets",
        mode=mode,
        endpoint="http://127.0.0.1/v1",
        model="m",
        prompt_id=strategy.template_id(),
        sampling={"temperature": 0.9},
        seed=0,
        per_label_target=2,
        accepted_per_label={"upbeat": 2, "grim": 2},
        attempts_per_label={"upbeat": 2, "grim": 2},
        short_labels=[],
        rejected={},
        rejected_per_label={},
        n_rows=4,
        client={},
        wall_seconds=0.1,
    )
