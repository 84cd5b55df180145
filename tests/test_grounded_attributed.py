"""The grounded and attributed strategies: what each request shows or asks for, copy protection, provenance,
and the real generate stage run in each mode against the OpenAI-compatible test server (journal reuse)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from tests.test_strategy_contract import GENERATE, SPEC, SPEC_DATA, TRAIN, build, project

from factories import server_generate
from synthbench.data.io import read_jsonl
from synthbench.errors import ConfigError
from synthbench.generation.attributed import DEFAULT_ATTRIBUTES, Attributed, label_attributes
from synthbench.generation.client import ChatRequest
from synthbench.generation.filters import REJECT_COPIED, QualityFilter
from synthbench.generation.journal import Completion
from synthbench.generation.requests import OnResult
from synthbench.generation.rounds import Plan, collect
from synthbench.generation.stage import run_generate
from synthbench.generation.strategies import Grounded, SampleSlot
from synthbench.tasks.registry import parse_task
from synthbench.testing.openai_server import serve


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project(tmp_path)
    return tmp_path


# --- grounded ----------------------------------------------------------------------------------------------------
def test_grounded_shows_k_truncated_train_texts_drawn_from_every_label(root: Path) -> None:
    strategy = build("grounded", root)
    assert isinstance(strategy, Grounded)
    draws = [strategy.shown_texts(SampleSlot("upbeat", i)) for i in range(30)]
    assert all(len(draw) == GENERATE.few_shot_k and len(set(draw)) == GENERATE.few_shot_k for draw in draws)
    assert all(len(text.split()) == GENERATE.few_shot_max_words for draw in draws for text in draw)
    prefixes = {label: {" ".join(t.split()[:6]) for t in texts} for label, texts in TRAIN.items()}
    shown = [text for draw in draws for text in draw]
    # requests for 'upbeat' are grounded in texts of both labels: the pool ignores labels
    assert {label for label, texts in prefixes.items() if texts & set(shown)} == {"upbeat", "grim"}
    assert len({tuple(draw) for draw in draws}) > 20  # a fresh draw per index


def test_grounded_draws_are_seeded_per_label_and_index(root: Path) -> None:
    strategy, again, other_seed = (
        build("grounded", root),
        build("grounded", root),
        build("grounded", root, seed=7),
    )
    slots = [SampleSlot(label, i) for label in ("upbeat", "grim") for i in range(10)]
    assert [strategy.shown_texts(s) for s in slots] == [again.shown_texts(s) for s in slots]
    assert [strategy.shown_texts(s) for s in slots] != [other_seed.shown_texts(s) for s in slots]
    assert strategy.shown_texts(SampleSlot("upbeat", 3)) != strategy.shown_texts(SampleSlot("grim", 3))


def test_grounded_prompt_says_not_to_copy_and_shows_no_label(root: Path) -> None:
    strategy = build("grounded", root)
    block = strategy.extra_prompt(SampleSlot("grim", 0))
    assert block is not None and "Do not copy or paraphrase" in block
    assert not any(name in block for name in SPEC.label_names)
    assert not any(label.description in block for label in SPEC.labels)
    user = strategy.messages(SampleSlot("grim", 0))[1]["content"]
    assert user.index(block) < user.index("the reviewer dislikes it")  # grounding, then the generation prompt


class CopyingAnswerer:
    """Answers even sample indices with the first real text the request showed, odd ones with a fresh text."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def run(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> dict[str, Completion]:
        out = {}
        for request in requests:
            slot = SampleSlot(request.meta["label"], request.meta["index"])
            shown = self.plan.strategy.shown_texts(slot)
            text = (
                shown[0] if slot.index % 2 == 0 else f"an original {slot.label} text number {slot.index} here"
            )
            out[request.key] = Completion(text, 10, 10, "stop", "m", 0.0)
        return out


def test_grounded_answers_copying_a_shown_text_are_rejected_as_copied_example(root: Path) -> None:
    strategy = build("grounded", root)
    plan = Plan.build(
        "gadgets", "grounded", SPEC, strategy, "m", GENERATE.model_copy(update={"per_label": 4})
    )
    quality = QualityFilter(min_words=3, max_words=90, label_names=SPEC.label_names)
    outcome = collect(plan, CopyingAnswerer(plan), quality)
    assert outcome.rejected == Counter({REJECT_COPIED: 8})  # indices 0, 2, 4, 6 of each label
    assert all(row["text"].startswith("an original") for row in outcome.rows)
    assert {row["mode"] for row in outcome.rows} == {"grounded"}


# --- attributed --------------------------------------------------------------------------------------------------
def test_attributed_uses_every_value_equally_often_give_or_take_one(root: Path) -> None:
    strategy = build("attributed", root)
    assert isinstance(strategy, Attributed)
    for n in (1, 2, 5, 7, 12, 13, 40):
        for label in SPEC.label_names:
            chosen = [strategy.attributes_for(SampleSlot(label, i)) for i in range(n)]
            for dimension, values in DEFAULT_ATTRIBUTES.items():
                counts = Counter(choice[dimension] for choice in chosen)
                assert set(counts) <= set(values)
                full = [counts.get(value, 0) for value in values]
                assert max(full) - min(full) <= 1, (n, dimension, counts)


def test_attributed_combinations_vary_across_dimensions(root: Path) -> None:
    strategy = build("attributed", root)
    pairs = {
        (c["length"], c["perspective"])
        for c in (strategy.attributes_for(SampleSlot("upbeat", i)) for i in range(60))
    }
    assert len(pairs) == 9  # both dimensions have 3 values: not locked together


def test_attributed_defaults_when_the_spec_declares_none(root: Path) -> None:
    strategy = build("attributed", root)
    slot = SampleSlot("upbeat", 4)
    chosen = strategy.attributes_for(slot)
    assert set(chosen) == set(DEFAULT_ATTRIBUTES)
    user = strategy.messages(slot)[1]["content"]
    assert all(f"- {dimension}: {value}" in user for dimension, value in chosen.items())
    assert strategy.provenance(slot) == {"attributes": chosen}
    assert "from defaults" in strategy.describe()


def test_attributed_uses_the_spec_attributes_and_per_label_values(root: Path) -> None:
    data = {
        **SPEC_DATA,
        "prompt": {
            **SPEC_DATA["prompt"],
            "attributes": {"tone": ["dry", "gushing"], "reviewer": ["a student", "a retiree"]},
            "label_attributes": {
                "grim": {"tone": ["furious", "weary", "sarcastic"], "flaw": ["battery", "noise"]}
            },
            "attributed": "Attributes for {label}:\n{attributes}",
        },
    }
    spec = parse_task(data, "attributed spec")
    assert label_attributes(spec, "upbeat") == {
        "tone": ["dry", "gushing"],
        "reviewer": ["a student", "a retiree"],
    }
    assert label_attributes(spec, "grim") == {
        "tone": ["furious", "weary", "sarcastic"],
        "reviewer": ["a student", "a retiree"],
        "flaw": ["battery", "noise"],
    }
    strategy = build("attributed", root, spec)
    grim = [strategy.attributes_for(SampleSlot("grim", i)) for i in range(6)]
    assert Counter(c["tone"] for c in grim) == {"furious": 2, "weary": 2, "sarcastic": 2}
    assert Counter(c["flaw"] for c in grim) == {"battery": 3, "noise": 3}
    upbeat = strategy.messages(SampleSlot("upbeat", 0))[1]["content"]
    assert "Attributes for upbeat:\n- tone: " in upbeat and "- reviewer: a " in upbeat
    assert "from the task spec" in strategy.describe()


def test_label_attributes_for_an_unknown_label_fail_at_load() -> None:
    data = {**SPEC_DATA, "prompt": {**SPEC_DATA["prompt"], "label_attributes": {"meh": {"tone": ["flat"]}}}}
    with pytest.raises(ConfigError, match="label_attributes names labels \\['meh'\\]"):
        parse_task(data, "bad spec")


# --- the generate stage ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["grounded", "attributed"])
def test_generate_stage_writes_rows_with_provenance_and_a_rerun_asks_nothing(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    layout = project(tmp_path)
    with serve() as server:
        generate = server_generate(
            server.base_url,
            tmp_path / "journal.sqlite",
            per_label=3,
            diversity_every=2,
            few_shot_k=2,
            few_shot_max_words=6,
        )
        first = run_generate("gadgets", mode, seed=0, generate=generate, spec=SPEC, layout=layout)
        asked = server.stats()["chat_requests"]
        rows = read_jsonl(layout.synthetic("gadgets", mode))
        second = run_generate("gadgets", mode, seed=0, generate=generate, spec=SPEC, layout=layout)
        assert server.stats()["chat_requests"] == asked  # every answer came from the journal
    assert asked == first.client["calls_made"] >= 6
    assert second.client["calls_made"] == 0
    assert len(rows) == 6 and {row["mode"] for row in rows} == {mode}
    assert Counter(row["label"] for row in rows) == {"upbeat": 3, "grim": 3}
    assert read_jsonl(layout.synthetic("gadgets", mode)) == rows  # the rerun wrote the same dataset
    assert {row["prompt_id"] for row in rows} == {first.prompt_id}
    strategy = build(mode, tmp_path)
    for row in rows:
        slot = SampleSlot(row["label"], row["sample_index"])
        assert {k: row[k] for k in strategy.provenance(slot)} == strategy.provenance(slot)
        if mode == "attributed":
            assert set(row["attributes"]) == set(DEFAULT_ATTRIBUTES)
    card = layout.synthetic_card("gadgets", mode).read_text()
    assert f"| strategy | {mode} " in card
