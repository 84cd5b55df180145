"""Format fidelity by construction: a task declares the markers every text carries (``text_format``), the prompt
asks for them, the quality filter rejects texts without them (``format_mismatch``), and with
``generate.endpoint.structured_output`` the endpoint is given a JSON schema whose pattern enforces them."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.test_strategy_contract import SPEC, SPEC_DATA, build, project

from factories import server_generate
from synthbench.config import EndpointParams, GenerateParams
from synthbench.data.io import read_jsonl
from synthbench.errors import ConfigError, MostlyRejected, ShortLabels
from synthbench.generation.card import render_card
from synthbench.generation.client import ChatRequest
from synthbench.generation.filters import (
    REJECT_FORMAT,
    REJECT_NOT_STRUCTURED,
    REJECT_STRUCTURED,
    QualityFilter,
    clean_text,
    is_structured,
)
from synthbench.generation.journal import Completion
from synthbench.generation.requests import OnResult
from synthbench.generation.rounds import Plan, collect
from synthbench.generation.stage import run_generate, summarise
from synthbench.generation.strategies import SampleSlot
from synthbench.generation.structured import response_format, text_of_answer
from synthbench.records import GenerationSummary
from synthbench.tasks.registry import load_task, load_task_file, parse_task
from synthbench.tasks.snapshot import read_task_snapshot, write_task_snapshot
from synthbench.tasks.textformat import format_pattern, format_problem
from synthbench.testing.openai_server import serve

ENTITIES = {
    "markers": [["<e1>", "</e1>", "the product"], {"open": "<e2>", "close": "</e2>", "wraps": "its rival"}]
}
MARKED = parse_task({**SPEC_DATA, "text_format": ENTITIES}, "marked spec")
FORMAT = MARKED.text_format
assert FORMAT is not None
SHARED_RELATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "relation_classification"


# --- the task spec -----------------------------------------------------------------------------------------------
def test_marker_pairs_may_be_lists_or_mappings_and_the_builtin_relation_task_declares_its_entities() -> None:
    assert [(p.open, p.close, p.wraps) for p in FORMAT.markers] == [
        ("<e1>", "</e1>", "the product"),
        ("<e2>", "</e2>", "its rival"),
    ]
    relation = load_task("relation_classification")
    assert relation.text_format is not None
    assert [(p.open, p.close) for p in relation.text_format.markers] == [("<e1>", "</e1>"), ("<e2>", "</e2>")]
    assert SPEC.text_format is None  # optional: a task without structure declares nothing


@pytest.mark.parametrize(
    ("text_format", "message"),
    [
        ({"markers": [["<e1>"]]}, "text_format.markers.0: .*a marker pair is \\[open, close\\]"),
        ({"markers": [["<e1>", "<e1>"]]}, "text_format.markers.0: .*both '<e1>'"),
        ({"markers": [["<e 1>", "</e1>"]]}, "text_format.markers.0.open: .*may not contain whitespace"),
        ({"markers": [["e1", "/e1"]]}, "text_format.markers.0.open: .*must start with a symbol"),
        ({"markers": [["<e1>", "</e1>"], ["<e1", "</e"]]}, "text_format.markers: .*'<e1' occurs inside"),
        ({"markers": []}, "text_format.markers: .*at least 1 item"),
        (
            {"markers": [["<a>", "</a>"]], "instruction": "Mark {spans}"},
            "text_format.instruction: .*\\{spans\\}",
        ),
        ({"markers": [["<a>", "</a>"]], "pairs": 1}, "text_format.pairs: Extra inputs"),
    ],
)
def test_a_bad_text_format_fails_at_load_naming_the_field(text_format: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^bad spec: {message}") as excinfo:
        parse_task({**SPEC_DATA, "text_format": text_format}, "bad spec")
    assert "\n" not in str(excinfo.value)


def test_the_format_travels_from_a_custom_spec_file_through_the_task_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "gadgets.yaml"
    path.write_text(json.dumps({**SPEC_DATA, "text_format": ENTITIES}), encoding="utf-8")  # JSON is YAML
    spec = load_task_file(path)
    assert spec == MARKED
    write_task_snapshot(spec, tmp_path / "task.json")  # what prepare writes and generate reads
    assert read_task_snapshot(tmp_path / "task.json").text_format == FORMAT


# --- the check and the filter ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("The <e1>Kettle Pro</e1> beats the <e2>Boiler 9</e2> on speed.", None),
        ("The <e2>Boiler 9</e2> loses to the <e1>Kettle Pro</e1>.", None),  # pairs in either order
        ("The Kettle Pro beats the <e2>Boiler 9</e2>.", "'<e1>' occurs 0 times"),
        ("The <e1>Kettle</e1> and <e1>Pro</e1> beat the <e2>Boiler</e2>.", "'<e1>' occurs 2 times"),
        ("The </e1>Kettle<e1> beats the <e2>Boiler</e2>.", "'</e1>' comes before '<e1>'"),
        ("The <e1> </e1> beats the <e2>Boiler</e2>.", "nothing between '<e1>' and '</e1>'"),
        ("The <e1>Kettle <e2>Pro</e2></e1> wins.", "marker pairs overlap"),
    ],
)
def test_format_problem_names_what_is_wrong(text: str, problem: str | None) -> None:
    assert format_problem(text, FORMAT) == problem
    assert bool(re.fullmatch(format_pattern(FORMAT), text)) == (problem is None)


def test_the_filter_counts_texts_without_the_format_as_format_mismatch() -> None:
    quality = QualityFilter(min_words=3, max_words=60, label_names=MARKED.label_names, text_format=FORMAT)
    answers = [
        "The <e1>Kettle Pro</e1> beats the <e2>Boiler 9</e2> on speed.",
        "The Kettle Pro beats the Boiler 9 on speed and on price.",
        "The <e1>Kettle</e1> beats the <e1>Boiler</e1> and <e2>Jug</e2>.",
        "The </e1>Kettle<e1> beats the <e2>Boiler 9</e2> on price.",
        'Sure! Here is a review: "The <e2>Boiler 9</e2> lags the <e1>Kettle Pro</e1."',
        'Sure! Here is a review: "The <e2>Boiler 9</e2> lags the <e1>Kettle Pro</e1>."',
    ]
    results = [quality.check(answer) for answer in answers]
    assert Counter(reason for _, reason in results) == {None: 2, REJECT_FORMAT: 4}
    # cleaning drops the preamble and the quotes, and keeps the markers
    assert [text for text, _ in results if text] == [
        "The <e1>Kettle Pro</e1> beats the <e2>Boiler 9</e2> on speed.",
        "The <e2>Boiler 9</e2> lags the <e1>Kettle Pro</e1>.",
    ]


def test_markers_survive_cleaning_and_bracket_markers_are_not_taken_for_json() -> None:
    marked = "<e1>Kettle Pro</e1> is quicker than <e2>Boiler 9</e2>"
    assert clean_text(f'Output: "{marked}"', ["upbeat"]) == marked
    assert clean_text(f"Sure! Here is a review: {marked} (label: upbeat)", ["upbeat"]) == marked
    assert not is_structured(marked, ["upbeat"], ["<e1>", "</e1>", "<e2>", "</e2>"])
    bracketed = "[E1]Kettle Pro[/E1] is quicker than [E2]Boiler 9[/E2]"
    assert is_structured(bracketed, ["upbeat"])  # without its markers declared it looks like broken JSON
    assert not is_structured(bracketed, ["upbeat"], ["[E1]", "[/E1]", "[E2]", "[/E2]"])
    assert is_structured(json.dumps({"text": marked, "label": "upbeat"}), [], ["<e1>", "</e1>"])


@pytest.mark.skipif(
    not SHARED_RELATIONS.exists(), reason="../shared/data/relation_classification not present"
)
def test_every_real_relation_text_carries_the_declared_format_after_cleaning() -> None:
    spec = load_task("relation_classification")
    assert spec.text_format is not None
    texts = pd.read_csv(SHARED_RELATIONS / "train.csv").text.tolist()
    problems = Counter(format_problem(clean_text(t, spec.label_names), spec.text_format) for t in texts)
    assert problems == {None: len(texts)}


# --- the prompt --------------------------------------------------------------------------------------------------
def test_the_relation_prompt_asks_for_the_markers_once_from_the_declared_format(tmp_path: Path) -> None:
    spec = load_task("relation_classification")
    assert spec.text_format is not None and "<e1>..." not in spec.prompt.generation  # not hand-written
    user = build("zero_shot", tmp_path, spec).messages(SampleSlot("spouse", 0))[1]["content"]
    assert user.count(spec.text_format.prompt()) == 1
    assert user.count("<e1>...</e1>") == 1 and user.count("<e2>...</e2>") == 1
    assert "the head entity in <e1>...</e1> and the tail entity in <e2>...</e2>" in user


def test_a_task_without_a_format_gets_the_prompt_it_always_had(tmp_path: Path) -> None:
    project(tmp_path)
    strategy = build("zero_shot", tmp_path)
    slot = SampleSlot("upbeat", 0)
    assert strategy.format_prompt() is None
    assert strategy.messages(slot)[1]["content"] == strategy.generation_prompt(slot)
    assert build("zero_shot", tmp_path, MARKED).template_id() != strategy.template_id()


# --- structured output -------------------------------------------------------------------------------------------
def openai(**fields: Any) -> EndpointParams:
    return EndpointParams(
        kind="openai", base_url="http://127.0.0.1:1/v1", model="m", api_key_env=None, **fields
    )


def test_response_format_is_a_strict_json_schema_whose_text_pattern_is_the_format() -> None:
    assert response_format(MARKED, openai()) is None  # off by default
    assert response_format(SPEC, openai(structured_output=True)) is None  # nothing to enforce
    sent = response_format(MARKED, openai(structured_output=True))
    assert sent is not None and sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "marked_text" and sent["json_schema"]["strict"] is True
    schema = sent["json_schema"]["schema"]
    assert schema["required"] == ["text"] and schema["additionalProperties"] is False
    assert schema["properties"]["text"]["pattern"] == format_pattern(FORMAT)
    fallback = EndpointParams(structured_output=True, engine="llama-cpp-python")  # its own dialect
    assert response_format(MARKED, fallback) == {"type": "json_object", "schema": schema}
    assert response_format(MARKED, EndpointParams(structured_output=True)) == sent  # llama-server: OpenAI's


def test_llama_cpp_compiles_the_schema_to_a_grammar() -> None:
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    sent = response_format(MARKED, openai(structured_output=True))
    assert sent is not None
    gbnf = grammar.json_schema_to_gbnf(json.dumps(sent["json_schema"]["schema"]))
    assert '"<e1>"' in gbnf and '"<e2>"' in gbnf


def test_structured_answers_are_read_back_or_rejected() -> None:
    assert text_of_answer('{"text": "a <e1>b</e1>"}') == "a <e1>b</e1>"
    assert [
        text_of_answer(raw) for raw in ('{"text": 3}', '{"text": "a", "label": "x"}', "prose", '{"te')
    ] == [None] * 4
    quality = QualityFilter(min_words=3, max_words=60, text_format=FORMAT, structured_answers=True)
    good = json.dumps({"text": "The <e1>Kettle Pro</e1> beats the <e2>Boiler 9</e2>."})
    assert quality.precheck(good) == ("The <e1>Kettle Pro</e1> beats the <e2>Boiler 9</e2>.", None)
    assert (
        quality.precheck("The <e1>Kettle Pro</e1> beats the <e2>Boiler 9</e2>.")[1] == REJECT_NOT_STRUCTURED
    )
    inner = json.dumps({"text": json.dumps({"label": "upbeat", "text": "x"})})
    assert quality.precheck(inner)[1] == REJECT_STRUCTURED  # the usual filters run on the text inside
    assert quality.precheck(json.dumps({"text": "The Kettle Pro beats the Boiler."}))[1] == REJECT_FORMAT


def test_the_response_format_is_sent_and_part_of_the_journal_key() -> None:
    generate = GenerateParams(endpoint=openai(structured_output=True))
    plain = GenerateParams(endpoint=openai())
    slot = SampleSlot("upbeat", 0)

    def request(spec: Any, params: GenerateParams) -> ChatRequest:
        strategy = build("zero_shot", Path("unused"), spec)
        return Plan.build("gadgets", "zero_shot", spec, strategy, "m", params).request(slot, [])

    on, off = request(MARKED, generate), request(MARKED, plain)
    assert on.params["response_format"] == response_format(MARKED, generate.endpoint)
    assert "response_format" not in off.params and on.key != off.key
    assert on.params["max_tokens"] == off.params["max_tokens"] + 16  # room for the JSON wrapper
    # a task without a format asks exactly as before, under the same key
    assert request(SPEC, generate) == request(SPEC, plain)


class ScriptedAnswerer:
    """Answers sample index i of a label with ``answers[i]``, its LABEL replaced by the label."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    def run(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> dict[str, Completion]:
        return {
            r.key: Completion(
                self.answers[r.meta["index"]].replace("LABEL", r.meta["label"]), 9, 9, "stop", "m", 0
            )
            for r in requests
        }


def test_the_new_reasons_reach_the_summary_json_and_the_card(tmp_path: Path) -> None:
    generate = GenerateParams(endpoint=openai(structured_output=True), per_label=1, diversity_every=0)
    strategy = build("zero_shot", tmp_path, MARKED)
    plan = Plan.build("gadgets", "zero_shot", MARKED, strategy, "m", generate)
    answers = [
        "not json at all",
        json.dumps({"text": "no markers in this one"}),
        json.dumps({"text": "The LABEL <e1>A</e1> and <e2>B</e2>"}),
    ]
    quality = QualityFilter(min_words=3, max_words=60, text_format=FORMAT, structured_answers=True)
    outcome = collect(plan, ScriptedAnswerer(answers), quality)
    assert outcome.rejected == {REJECT_NOT_STRUCTURED: 2, REJECT_FORMAT: 2}
    assert [row["text"] for row in outcome.rows] == [
        "The upbeat <e1>A</e1> and <e2>B</e2>",
        "The grim <e1>A</e1> and <e2>B</e2>",
    ]
    summary = summarise(plan, outcome, {}, 0, generate.endpoint, 0.0)
    summary.write(tmp_path / "s.json")
    again = GenerationSummary.model_validate_json((tmp_path / "s.json").read_bytes())
    assert again.rejected == {REJECT_NOT_STRUCTURED: 2, REJECT_FORMAT: 2}
    assert again.response_format == plan.response_format
    card = render_card(again, spec=MARKED, strategy=strategy, diversity_every=0)
    assert "'not_structured_output': 2" in card and "'format_mismatch': 2" in card
    assert "| structured output | response_format json_schema" in card


def generate_params(
    tmp_path: Path, base_url: str, journal: str, *, structured: bool = True, **fields: Any
) -> GenerateParams:
    settings: dict[str, Any] = {"per_label": 2, "diversity_every": 0, "max_words": None}
    return server_generate(
        base_url, tmp_path / journal, endpoint={"structured_output": structured}, **{**settings, **fields}
    )


def test_generate_round_trip_through_response_format_against_the_test_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    layout = project(tmp_path)
    marked = "The <e1>Kettle {digest}</e1> boils faster than the <e2>Boiler</e2>."
    with serve() as server:
        server.configure(answer_text=marked)
        generate = generate_params(tmp_path, server.base_url, "on.sqlite")
        summary = run_generate("gadgets", "zero_shot", seed=0, generate=generate, spec=MARKED, layout=layout)
        stats = server.stats()
        rows = read_jsonl(layout.synthetic("gadgets", "zero_shot"))
        # A server that ignores response_format answers prose: every answer is rejected, nothing is written.
        server.configure(honour_response_format=False)
        ignored = generate_params(tmp_path, server.base_url, "ignored.sqlite", allow_short=True)
        with pytest.raises(ShortLabels, match="rejected: not_structured_output 12\\)"):
            run_generate("gadgets", "zero_shot", seed=1, generate=ignored, spec=MARKED, layout=layout)
        # One that honours it but answers without the markers is caught by the filter all the same.
        server.configure(honour_response_format=True, answer_text="The kettle boils faster than the boiler.")
        unmarked = generate_params(tmp_path, server.base_url, "unmarked.sqlite", allow_short=True)
        with pytest.raises(ShortLabels, match="rejected: format_mismatch 12\\)"):
            run_generate("gadgets", "zero_shot", seed=2, generate=unmarked, spec=MARKED, layout=layout)
        assert server.stats()["pattern_mismatches"] == 12  # the fake server checked them against the pattern
    assert summary.rejected == {} and stats["structured_answers"] == 4 and stats["pattern_mismatches"] == 0
    expected = re.compile(r"The <e1>Kettle [0-9a-f]{12}</e1> boils faster than the <e2>Boiler</e2>\.")
    assert len(rows) == 4 and all(expected.fullmatch(row["text"]) for row in rows)  # unwrapped from the JSON
    assert Counter(row["label"] for row in rows) == {"upbeat": 2, "grim": 2}
    assert summary.response_format == response_format(MARKED, generate.endpoint)
    assert json.loads(layout.synthetic_summary("gadgets", "zero_shot").read_text())["response_format"][
        "type"
    ] == ("json_schema")


def test_a_stage_whose_answers_lack_the_markers_stops_early_pointing_at_structured_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTHBENCH_JOURNAL", raising=False)
    layout = project(tmp_path)
    with serve() as server:
        server.configure(answer_text="The kettle {digest} boils faster than the boiler.")
        generate = generate_params(tmp_path, server.base_url, "j.sqlite", structured=False, per_label=30)
        with pytest.raises(MostlyRejected) as excinfo:
            run_generate("gadgets", "zero_shot", seed=0, generate=generate, spec=MARKED, layout=layout)
    message = str(excinfo.value)
    assert "20 of the first 20 answers were rejected, most as format_mismatch (20)" in message
    assert "set generate.endpoint.structured_output: true" in message
