"""The label-consistency filter (``generate.label_consistency_threshold``): a cross-fitted real-data oracle on the
real MiniLM encoder, the generation loop that drops what it rejects, and the generate stage through the real
openai client and the OpenAI-compatible test server (summary, card, written rows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from tests.test_strategy_contract import GENERATE, SPEC, TRAIN, build, project

from factories import server_generate
from synthbench.data.io import read_jsonl
from synthbench.data.text import text_key
from synthbench.encoder import embed_texts
from synthbench.errors import ConfigError
from synthbench.generation.client import ChatRequest
from synthbench.generation.consistency import REJECT_LABEL_INCONSISTENT, LabelConsistency
from synthbench.generation.filters import REJECT_DUPLICATE, QualityFilter
from synthbench.generation.journal import Completion
from synthbench.generation.requests import OnResult
from synthbench.generation.rounds import Plan, collect
from synthbench.generation.stage import run_generate
from synthbench.testing.openai_server import serve

TEXTS = [text for texts in TRAIN.values() for text in texts]
LABELS = [label for label, texts in TRAIN.items() for _ in texts]
UPBEAT = "a bright sturdy widget that charges quickly and feels solid in the hand"
GRIM = "a flimsy gizmo that rattles, overheats and drains its battery by noon"


@pytest.fixture(scope="module")
def oracle() -> LabelConsistency:
    return LabelConsistency.fit(TEXTS, LABELS, SPEC.label_names, 0.6, folds=4, seed=0)


def test_the_oracle_rejects_a_text_that_reads_as_another_label_and_keeps_one_that_fits(
    oracle: LabelConsistency,
) -> None:
    assert oracle.rejects([GRIM, UPBEAT, GRIM, UPBEAT], ["upbeat", "upbeat", "grim", "grim"]) == [
        True,
        False,
        False,
        True,
    ]
    probs = oracle.probabilities([UPBEAT, GRIM])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 0] > 0.6 and probs[1, 1] > 0.6  # columns in the task's label order: upbeat, grim
    assert oracle.cv_accuracy == 1.0  # the two templates never mix
    assert oracle.describe() == {"threshold": 0.6, "folds": 4, "oracle_cv_accuracy": 1.0, "n_real": 24}


def test_a_copy_of_a_real_row_is_read_by_the_one_oracle_that_never_saw_it(oracle: LabelConsistency) -> None:
    assert sorted(Counter(oracle.held_out.values()).values()) == [6, 6, 6, 6]  # every row held out once
    assert len(oracle.held_out) == len(TEXTS)
    copy = TEXTS[5]
    fold = oracle.held_out[text_key(copy)]
    emb = embed_texts([copy])
    alone = oracle.models[fold].predict_proba(emb)
    columns = [list(oracle.models[fold].classes_).index(name) for name in SPEC.label_names]
    assert np.allclose(oracle.probabilities([copy]), alone[:, columns])
    averaged = np.mean([m.predict_proba(emb)[:, columns] for m in oracle.models], axis=0)
    assert not np.allclose(alone[:, columns], averaged)  # the folds that saw it would have been surer


def test_too_few_real_rows_per_label_for_the_folds_is_a_one_line_error_naming_the_param() -> None:
    with pytest.raises(ConfigError, match=r"label_consistency_folds=5 rows for \{'grim': 3\}.*null"):
        LabelConsistency.fit(
            [*TEXTS[:12], *TEXTS[12:15]], [*LABELS[:12], *LABELS[12:15]], SPEC.label_names, 0.6, where="x"
        )


class MixedAnswerer:
    """'upbeat' requests: even indices get an upbeat text, odd ones a grim text; 'grim' requests a grim text."""

    def run(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> dict[str, Completion]:
        out = {}
        for request in requests:
            label, index = request.meta["label"], request.meta["index"]
            grim = label == "grim" or index % 2 == 1
            text = f"{GRIM if grim else UPBEAT} number {index} {label}"
            out[request.key] = Completion(text, 10, 10, "stop", "m", 0.0)
        return out


def test_collect_drops_what_the_oracle_rejects_and_asks_again(root: Path, oracle: LabelConsistency) -> None:
    plan = Plan.build(
        "gadgets",
        "zero_shot",
        SPEC,
        build("zero_shot", root),
        "m",
        GENERATE.model_copy(update={"per_label": 4}),
    )
    quality = QualityFilter(
        min_words=3, max_words=90, label_names=SPEC.label_names, near_duplicate_threshold=None
    )
    outcome = collect(plan, MixedAnswerer(), quality, consistency=oracle)
    # rounds of 4 (diversity_every): upbeat 0-3 keeps 0 and 2, then 4-5 keeps 4, then 6 keeps 6
    assert [row["sample_index"] for row in outcome.accepted["upbeat"]] == [0, 2, 4, 6]
    assert [row["sample_index"] for row in outcome.accepted["grim"]] == [0, 1, 2, 3]
    assert outcome.rejected == Counter({REJECT_LABEL_INCONSISTENT: 3})
    assert outcome.rejected_per_label["upbeat"] == Counter({REJECT_LABEL_INCONSISTENT: 3})
    assert outcome.attempts == {"upbeat": 7, "grim": 4}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project(tmp_path)
    return tmp_path


def test_generate_stage_records_the_oracle_and_its_rejections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every answer is the same grim text: upbeat's first is rejected by the oracle and does not enter the
    duplicate index, so grim's first is accepted (the rest are duplicates)."""
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    layout = project(tmp_path)
    with serve() as server:
        server.configure(answer_text=GRIM)
        generate = server_generate(
            server.base_url,
            tmp_path / "journal.sqlite",
            per_label=2,
            diversity_every=2,
            max_attempts_factor=2,
            label_consistency_threshold=0.6,
            label_consistency_folds=4,
            allow_short=True,
            max_words=None,
        )
        summary = run_generate("gadgets", "zero_shot", seed=0, generate=generate, spec=SPEC, layout=layout)
    assert [row["label"] for row in read_jsonl(layout.synthetic("gadgets", "zero_shot"))] == ["grim"]
    assert summary.rejected_per_label == {
        "upbeat": {REJECT_LABEL_INCONSISTENT: 4},
        "grim": {REJECT_DUPLICATE: 3},
    }
    assert summary.label_consistency == {
        "threshold": 0.6,
        "folds": 4,
        "oracle_cv_accuracy": 1.0,
        "n_real": 24,
    }
    card = layout.synthetic_card("gadgets", "zero_shot").read_text()
    assert (
        "| label consistency | a real-data oracle (4-fold cross-fitted, out-of-fold accuracy 100.0%" in card
    )
    assert "label_inconsistent" in card
