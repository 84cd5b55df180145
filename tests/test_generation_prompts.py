"""GenerationStrategy contract: every strategy passes the same battery; filters reject and count by reason."""

from __future__ import annotations

import pytest

from synthbench.generation.filters import (
    REJECT_COPIED,
    REJECT_DUPLICATE,
    REJECT_EMPTY,
    REJECT_REFUSAL,
    REJECT_TOO_LONG,
    REJECT_TOO_SHORT,
    QualityFilter,
    clean_text,
)
from synthbench.generation.modes import make_strategy
from synthbench.generation.strategies import FewShot, SampleSlot, request_key
from synthbench.tasks import load_task

SPEC = load_task("rotten_tomatoes")
REAL = {
    "fresh": [f"a lovely film number {i} with heart" for i in range(10)],
    "rotten": [f"a dull film number {i} with no point" for i in range(10)],
}


def strategy(mode: str, seed: int = 0):
    return make_strategy(
        mode,
        SPEC,
        seed=seed,
        diversity_every=4,
        diversity_examples=2,
        real_by_label=REAL,
        few_shot_k=3,
        few_shot_max_words=5,
    )


@pytest.mark.parametrize("mode", ["zero_shot", "few_shot"])
class TestStrategyContract:
    def test_messages_are_deterministic(self, mode: str) -> None:
        slot = SampleSlot("fresh", 7)
        assert strategy(mode).messages(slot, ["x"]) == strategy(mode).messages(slot, ["x"])

    def test_system_is_the_context_and_user_names_the_label(self, mode: str) -> None:
        messages = strategy(mode).messages(SampleSlot("rotten", 0))
        assert messages[0] == {"role": "system", "content": SPEC.prompt.context}
        assert "negative (rotten)" in messages[1]["content"]

    def test_diversity_prompt_only_from_second_round(self, mode: str) -> None:
        s = strategy(mode)
        previous = ["first text", "second text", "third text"]
        assert "clearly different" not in s.messages(SampleSlot("fresh", 3), previous)[1]["content"]
        later = s.messages(SampleSlot("fresh", 4), previous)[1]["content"]
        assert "clearly different" in later and "third text" in later and "first text" not in later

    def test_seeds_differ_per_index_and_stay_stable(self, mode: str) -> None:
        s = strategy(mode)
        seeds = {s.request_seed(SampleSlot("fresh", i)) for i in range(50)}
        assert len(seeds) == 50
        assert s.request_seed(SampleSlot("fresh", 3)) == strategy(mode).request_seed(SampleSlot("fresh", 3))

    def test_identical_prompts_at_different_indices_get_different_keys(self, mode: str) -> None:
        messages = [{"role": "user", "content": "same"}]
        keys = {
            request_key("t", mode, SampleSlot("fresh", i), "m", {"temperature": 1}, messages)
            for i in range(3)
        }
        assert len(keys) == 3


def test_few_shot_draws_fresh_real_examples_per_call_and_truncates() -> None:
    s = strategy("few_shot")
    assert isinstance(s, FewShot)
    draws = [tuple(s.examples_for(SampleSlot("fresh", i))) for i in range(6)]
    assert len(set(draws)) > 1
    assert all(len(text.split()) <= 5 for draw in draws for text in draw)
    assert all(text.startswith("a lovely film") for draw in draws for text in draw)
    content = s.messages(SampleSlot("fresh", 0))[1]["content"]
    assert "Do not copy or paraphrase" in content


def test_template_id_changes_with_the_prompt() -> None:
    other = SPEC.model_copy(update={"prompt": SPEC.prompt.model_copy(update={"length_words": 99})})
    assert (
        strategy("zero_shot").template_id()
        != make_strategy("zero_shot", other, seed=0, diversity_every=4, diversity_examples=2).template_id()
    )


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ('"A gem of a movie."', "A gem of a movie."),
        ("Sure! Here is a review: A gem of a movie.", "A gem of a movie."),
        ("Review: A gem of a movie. (fresh)", "A gem of a movie."),
        ("Sentiment: rotten. A mess from start to end", "A mess from start to end"),
    ],
)
def test_clean_text_strips_meta_and_label_leakage(raw: str, cleaned: str) -> None:
    assert clean_text(raw, ["fresh", "rotten"]) == cleaned


def test_quality_filter_rejects_by_reason() -> None:
    quality = QualityFilter(min_words=3, max_words=8, label_names=["fresh", "rotten"])
    assert quality.check("   ") == (None, REJECT_EMPTY)
    assert quality.check("As an AI language model, I cannot write reviews.") == (None, REJECT_REFUSAL)
    assert quality.check("Too short") == (None, REJECT_TOO_SHORT)
    assert quality.check("one two three four five six seven eight nine") == (None, REJECT_TOO_LONG)
    assert quality.check("A truly great film indeed.") == ("A truly great film indeed.", None)
    assert quality.check("a truly GREAT film, indeed!") == (None, REJECT_DUPLICATE)
    assert quality.check("copied real text here", examples=["Copied real text here."]) == (
        None,
        REJECT_COPIED,
    )
