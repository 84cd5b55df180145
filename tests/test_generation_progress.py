"""Progress a person can trust: the bar moves with every answer (answers, rejected by reason, rate, ETA), and a
stage whose first answers are nearly all rejected stops early with one line naming the reason and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.conftest import REPO_ROOT
from tests.test_cli_errors import assert_one_line_error, project

from synthbench.errors import MostlyRejected
from synthbench.generation.client import ChatClient, ChatRequest
from synthbench.generation.endpoint import EndpointConfig
from synthbench.generation.filters import REJECT_TOO_SHORT, QualityFilter
from synthbench.generation.journal import Journal
from synthbench.generation.progress import ProgressWatch, Tally
from synthbench.testing.openai_server import serve


def test_the_line_counts_answers_rejections_rate_and_eta() -> None:
    tally = Tally(target=100, attempt_cap=300, started=0.0)
    for _ in range(6):
        tally.answer(None)
    for _ in range(3):
        tally.answer(REJECT_TOO_SHORT)
    tally.answer("refusal_or_meta")
    # 10 answers in 5 s = 2/s; 6 of 10 pass, so 94 more rows need ~157 answers ≈ 78 s
    assert tally.line(5.0) == "answers 10 · rejected 4 (too_short 3, refusal_or_meta 1) · 2.0/s · ETA 1m18s"
    assert tally.accepted_estimate == 6
    tally.round_done(5)  # the dataset's filter dropped a duplicate: its count replaces the estimate
    assert tally.accepted_estimate == 5
    tally.answer(None)
    assert tally.accepted_estimate == 6


def test_eta_is_unknown_until_an_answer_passes() -> None:
    tally = Tally(target=10, attempt_cap=30, started=0.0)
    tally.answer(REJECT_TOO_SHORT)
    assert tally.line(1.0) == "answers 1 · rejected 1 (too_short 1) · 1.0/s · ETA ?"


@pytest.mark.parametrize(
    ("rejected", "attempt_cap", "stops"),
    [(18, 300, True), (20, 300, True), (17, 300, False), (18, 1000, False)],
)
def test_early_stop_needs_twenty_answers_nearly_all_rejected_and_a_cap_that_cannot_fill(
    rejected: int, attempt_cap: int, stops: bool
) -> None:
    tally = Tally(target=100, attempt_cap=attempt_cap, started=0.0)
    for i in range(20):
        tally.answer(REJECT_TOO_SHORT if i < rejected else None)
    assert (tally.hopeless() == REJECT_TOO_SHORT) is stops  # 2 of 20 passing × 1000 attempts would fill 100


def test_nineteen_rejected_answers_do_not_judge_yet() -> None:
    tally = Tally(target=100, attempt_cap=300, started=0.0)
    for _ in range(19):
        tally.answer(REJECT_TOO_SHORT)
    assert tally.hopeless() is None


def test_the_bar_advances_with_each_answer_as_it_arrives(tmp_path: Path) -> None:
    shown: list[tuple[int, str]] = []
    quality = QualityFilter(min_words=3, max_words=100)
    watch = ProgressWatch(
        "t/zero_shot", Tally(5, 15, 0.0), quality, lambda n, line: shown.append((n, line)), clock=lambda: 1.0
    )
    requests = [
        ChatRequest(
            f"k{i}", [{"role": "user", "content": f"write a text number {i}"}], {"max_tokens": 30}, {}
        )
        for i in range(5)
    ]
    with serve() as server, Journal(tmp_path / "j.sqlite") as journal:
        config = EndpointConfig(base_url=server.base_url, model="m", api_key_env=None, concurrency=1)
        ChatClient(config, journal).run(requests, watch.on_result)
    assert [n for n, _ in shown] == [1, 2, 3, 4, 5]
    assert [line.split(" · ")[0] for _, line in shown] == [f"answers {i}" for i in range(1, 6)]


@pytest.mark.slow
def test_a_stage_whose_answers_are_nearly_all_rejected_stops_early_with_the_reason_and_fix(
    cli, tmp_path: Path
) -> None:
    with serve() as server:
        server.configure(answer_text="Okay.")  # one word: too short for min_words 4
        params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["generate"]
        params["endpoint"].update(kind="openai", base_url=server.base_url, concurrency=2, api_key_env=None)
        params.update(per_label=30, max_attempts_factor=3, diversity_every=0)
        root = project(tmp_path, generate=params)
        assert cli("prepare", "--task", "toy", cwd=root).returncode == 0
        done = cli("generate", "--task", "toy", "--mode", "zero_shot", cwd=root)
        asked = server.stats()["chat_requests"]
    line = assert_one_line_error(done, "stopped early", "too_short", "generate.min_words")
    assert done.returncode == MostlyRejected.exit_code == 8
    assert "20 of the first 20 answers were rejected" in line
    assert asked <= 20 + 2  # the answers in flight when it stopped, not 2 labels × 30 × 3 = 180
    assert not (root / "data" / "synthetic" / "toy" / "zero_shot.jsonl").exists()
