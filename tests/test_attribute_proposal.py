"""Attributes proposed by the model (``generate.propose_attributes``): the answer's parsing, and the generate stage
through the real openai client and the OpenAI-compatible test server — a usable proposal (already in the
journal: paid once, never asked again) shapes every request; an unusable one falls back to the defaults, says
why, and is not asked again either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_strategy_contract import SPEC, project

from factories import server_generate
from synthbench.config import GenerateParams
from synthbench.data.io import read_jsonl
from synthbench.generation.attributed import DEFAULT_ATTRIBUTES
from synthbench.generation.journal import Completion, Journal
from synthbench.generation.proposal import parse_proposal, proposal_request
from synthbench.generation.stage import model_identity, proposal_sampling, run_generate
from synthbench.testing.openai_server import serve

PROPOSED = {"gadget": ["a phone", "a kettle", "a drone"], "reviewer": ["a student", "a retiree"]}


def test_parse_keeps_a_fenced_json_object_and_trims_what_does_not_fit() -> None:
    answer = '```json\n{"gadget": ["a phone", " a kettle ", "a phone", 3], "mood": ["calm"], "x": "y"}\n```'
    assert parse_proposal(answer) == ({"gadget": ["a phone", "a kettle", "3"]}, "")
    many = json.dumps({f"d{i}": [f"v{j}" for j in range(12)] for i in range(9)})
    parsed, _ = parse_proposal(f"Sure! Here they are: {many} Hope this helps.")
    assert parsed is not None and len(parsed) == 6 and all(len(v) == 8 for v in parsed.values())


@pytest.mark.parametrize(
    "answer, why",
    [
        ("tone, length and topic", "the answer holds no JSON object"),
        ('{"tone": ["formal", }', "the answer is not valid JSON"),
        ('{"tone": ["formal"], "length": "short"}', "no dimension has at least two values"),
    ],
)
def test_parse_says_why_an_answer_is_unusable(answer: str, why: str) -> None:
    attributes, reason = parse_proposal(answer)
    assert attributes is None and reason.startswith(why)


def _generate(server_url: str, journal: Path) -> GenerateParams:
    return server_generate(server_url, journal, per_label=3, propose_attributes=True)


def test_a_journaled_proposal_shapes_every_request_and_is_never_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    layout = project(tmp_path)
    with serve() as server:
        generate = _generate(server.base_url, tmp_path / "journal.sqlite")
        request = proposal_request(SPEC, model_identity(generate.endpoint), proposal_sampling(generate, 0))
        with Journal(tmp_path / "journal.sqlite") as journal:  # as a first run would have left it
            journal.record(request.key, Completion(json.dumps(PROPOSED), 50, 30, "stop", "m", 0.1), meta={})
        summary = run_generate("gadgets", "attributed", seed=0, generate=generate, spec=SPEC, layout=layout)
        asked = server.stats()["chat_requests"]
    rows = read_jsonl(layout.synthetic("gadgets", "attributed"))
    assert asked == summary.client["calls_made"] == 6  # the generation requests only
    assert summary.client["cached"] == 1  # the proposal, from the journal
    assert all(set(row["attributes"]) == set(PROPOSED) for row in rows)
    assert all(row["attributes"]["gadget"] in PROPOSED["gadget"] for row in rows)
    assert summary.attribute_proposal == {
        "key": request.key,
        "model": model_identity(generate.endpoint),
        "attributes": PROPOSED,
        "note": f"proposed by the model (journal key {request.key[:12]})",
    }
    card = layout.synthetic_card("gadgets", "attributed").read_text()
    assert "| attribute proposal | proposed by the model" in card and "'reviewer': ['a student'" in card


def test_an_unusable_proposal_falls_back_to_the_defaults_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    layout = project(tmp_path)
    with serve() as server:  # the test server echoes the prompt
        generate = _generate(server.base_url, tmp_path / "journal.sqlite")
        first = run_generate("gadgets", "attributed", seed=0, generate=generate, spec=SPEC, layout=layout)
        again = run_generate("gadgets", "attributed", seed=0, generate=generate, spec=SPEC, layout=layout)
    assert first.client["calls_made"] == 7  # six rows and the proposal
    assert again.client["calls_made"] == 0  # the proposal too came from the journal
    assert first.attribute_proposal is not None and first.attribute_proposal["attributes"] is None
    # the echo quotes the prompt, whose only JSON is the format's example
    assert (
        "unusable (it only repeats the prompt's example): built-in defaults"
        in first.attribute_proposal["note"]
    )
    rows = read_jsonl(layout.synthetic("gadgets", "attributed"))
    assert all(set(row["attributes"]) == set(DEFAULT_ATTRIBUTES) for row in rows)
