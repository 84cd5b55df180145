"""The targeted mode (S3-style): the quick classifier's hard examples from the real train split, the prompt built
around one, provenance, the mix condition, and the generate stage against the OpenAI-compatible test server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from tests.test_strategy_contract import SPEC, TRAIN, build

from factories import server_generate
from synthbench.conditions import parse_condition
from synthbench.data.io import read_jsonl, write_jsonl
from synthbench.errors import ConfigError
from synthbench.generation.stage import run_generate
from synthbench.generation.strategies import SampleSlot
from synthbench.generation.targeted import HOLDOUT_FRACTION, Targeted, find_hard_examples
from synthbench.layout import Layout
from synthbench.testing.openai_server import serve

# Upbeat rows written exactly like the grim ones (twice as many): what a classifier fit on the rest gets wrong.
PLANTED = [
    f"flimsy gizmo model {i} rattles overheats and drains its battery by noon" for i in range(100, 106)
]
REAL = {"upbeat": [*TRAIN["upbeat"], *PLANTED], "grim": TRAIN["grim"]}


def write_project(root: Path) -> Layout:
    layout = Layout(root)
    rows = [{"text": text, "label": label} for label, texts in REAL.items() for text in texts]
    write_jsonl(layout.real("gadgets", "train"), rows)
    write_jsonl(layout.real("gadgets", "test"), [{"text": "held out test review", "label": "grim"}])
    return layout


@pytest.fixture(scope="module")
def hard() -> dict:
    return find_hard_examples(REAL, SPEC.label_names, seed=0)


def test_hard_examples_are_the_held_out_rows_misread_first_and_only_train_rows(hard: dict) -> None:
    held = {label: round(len(texts) * HOLDOUT_FRACTION) for label, texts in REAL.items()}
    assert {label: len(examples) for label, examples in hard.items()} == held  # 30% stratified: 5 and 4
    upbeat = hard["upbeat"]
    wrong = [e for e in upbeat if e.wrong]
    assert wrong, "the planted grim-sounding upbeat rows are the classifier's errors"
    assert all(e.text in PLANTED and e.misread_as == "grim" for e in wrong)
    assert upbeat[: len(wrong)] == wrong  # wrong ones first
    assert [e.confidence for e in wrong] == sorted((e.confidence for e in wrong), reverse=True)
    right = upbeat[len(wrong) :]
    assert [e.confidence for e in right] == sorted(e.confidence for e in right)  # least certain first
    assert all(e.misread_as == e.label == "upbeat" for e in right)
    every = {text for texts in REAL.values() for text in texts}
    assert all(e.text in every for examples in hard.values() for e in examples)


def test_the_prompt_shows_one_hard_example_and_says_what_it_was_mistaken_for(tmp_path: Path) -> None:
    write_project(tmp_path)
    strategy = build("targeted", tmp_path)
    assert isinstance(strategy, Targeted)
    n = len(strategy.hard["upbeat"])
    first = strategy.hard["upbeat"][0]
    assert first.wrong
    slot = SampleSlot("upbeat", 0)
    assert strategy.target_for(SampleSlot("upbeat", n)) == first  # request i works around example i mod n
    shown = strategy.shown_texts(slot)
    assert shown == [" ".join(first.text.split()[:6])]  # cut to few_shot_max_words (6 in the contract params)
    user = strategy.messages(slot)[1]["content"]
    grim, upbeat = SPEC.label("grim").prompt_phrase, SPEC.label("upbeat").prompt_phrase
    assert f"This real text is {upbeat}, and a classifier mistook it for {grim}:\n- {shown[0]}\n" in user
    assert "Do not copy or paraphrase it." in user
    assert strategy.provenance(slot) == {"target": {"hard_example": 0, "misread_as": "grim"}}
    last = SampleSlot("upbeat", n - 1)
    if not strategy.target_for(last).wrong:
        assert "a classifier was unsure of it" in strategy.messages(last)[1]["content"]


def test_a_label_with_one_real_row_is_a_one_line_error() -> None:
    with pytest.raises(
        ConfigError, match=r"mode targeted needs at least 2 real training rows per label.*'grim': 1"
    ):
        find_hard_examples({"upbeat": TRAIN["upbeat"], "grim": TRAIN["grim"][:1]}, SPEC.label_names, seed=0)


def test_its_mix_reads_the_real_rows_then_the_targeted_rows() -> None:
    assert parse_condition("real+targeted").sources == ("real", "targeted")


def test_generate_stage_in_targeted_mode_writes_rows_with_their_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    layout = write_project(tmp_path)
    with serve() as server:
        generate = server_generate(
            server.base_url,
            tmp_path / "journal.sqlite",
            per_label=3,
            few_shot_max_words=6,
        )
        summary = run_generate("gadgets", "targeted", seed=0, generate=generate, spec=SPEC, layout=layout)
    rows = read_jsonl(layout.synthetic("gadgets", "targeted"))
    assert summary.n_rows == 6 and Counter(row["label"] for row in rows) == {"upbeat": 3, "grim": 3}
    strategy = build("targeted", tmp_path)
    for row in rows:
        slot = SampleSlot(row["label"], row["sample_index"])
        assert row["target"] == strategy.provenance(slot)["target"]
    card = layout.synthetic_card("gadgets", "targeted").read_text()
    assert "| strategy | targeted " in card and "held-out rows misread by a quick classifier" in card
