"""The abuse matrix: bad params, task specs, data files, model answers, interrupts, concurrent runs and pasted
keys, each run as a user runs ``synthbench`` (a subprocess against the fake OpenAI server). Every case must end
with the expected exit code, exactly one ``error:`` line naming the file or key (none on success), no
traceback, no output the next ``dvc repro`` would trust, no request paid twice, no key value in any output or
file, and no process of ours left running. Totals: ``test_matrix_totals`` (recorded in benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from tests.abuse_harness import (
    KEY_VAR,
    OUTPUTS,
    SECRET,
    TOKEN_SECRET,
    Case,
    Outcome,
    Totals,
    base_params,
    error_lines,
    finish,
    interrupt_when,
    leftovers,
    merge,
    reap,
    run,
    secret_hits,
    stage_args,
    start,
    write_project,
)

from synthbench.testing.openai_server import ServerConfig, ServerHandle, serve

pytestmark = pytest.mark.slow
TOTALS = Totals()
EP = "endpoint"
G = "generate"


def gen(**fields: object) -> dict[str, object]:
    return {G: fields}


def ep(**fields: object) -> dict[str, object]:
    return {G: {EP: fields}}


def prompt(**fields: object) -> dict[str, object]:
    return {"prompt": fields}


FEW = ("generate", "--task", "tiny", "--mode", "few_shot")
PREP = ("prepare", "--task", "tiny")
LONG = " ".join(["word"] * 200)

CASES: list[Case] = [
    # --- params -------------------------------------------------------------------------------------------
    Case(
        "params-missing",
        2,
        "nope.yaml",
        args=("generate", "--task", "tiny", "--mode", "zero_shot", "-p", "nope.yaml"),
    ),
    Case("params-not-yaml", 2, "params.yaml", raw_params="tasks: [tiny\n"),
    Case("params-a-list", 2, "params.yaml", raw_params="- tiny\n"),
    Case("params-empty-file", 2, "params.yaml", raw_params=""),
    Case("params-not-utf8", 2, "params.yaml", raw_params=b"tasks: [\xff\xfe]\n"),
    Case("params-unknown-key", 2, "generate.colour", params=gen(colour="red")),
    Case("params-per-label-zero", 2, "generate.per_label", params=gen(per_label=0)),
    Case("params-per-label-text", 2, "generate.per_label", params=gen(per_label="many")),
    Case("params-temperature", 2, "generate.temperature", params=gen(temperature=3)),
    Case("params-top-p", 2, "generate.top_p", params=gen(top_p=0)),
    Case("params-attempts", 2, "generate.max_attempts_factor", params=gen(max_attempts_factor=0.5)),
    Case("params-diversity-negative", 2, "generate.diversity_every", params=gen(diversity_every=-1)),
    Case("params-budget-zero", 2, "generate.budget_usd", params=gen(budget_usd=0)),
    Case("params-threshold", 2, "generate.near_duplicate_threshold", params=gen(near_duplicate_threshold=2)),
    Case("params-concurrency", 2, "generate.endpoint.concurrency", params=ep(concurrency=0)),
    Case("params-timeout", 2, "generate.endpoint.timeout_s", params=ep(timeout_s=-1)),
    Case("params-retries", 2, "generate.endpoint.max_retries", params=ep(max_retries=-1)),
    Case("params-kind", 2, "generate.endpoint.kind", params=ep(kind="magic")),
    Case("params-url-garbage", 2, "generate.endpoint.base_url", params=ep(base_url="not a url")),
    Case("params-url-ftp", 2, "generate.endpoint.base_url", params=ep(base_url="ftp://127.0.0.1/v1")),
    Case("params-url-port", 2, "generate.endpoint.base_url", params=ep(base_url="http://127.0.0.1:99999/v1")),
    Case(
        "params-url-credentials",
        2,
        "generate.endpoint.base_url",
        params=ep(base_url=f"http://user:{SECRET}@127.0.0.1/v1"),
    ),
    Case("params-seed", 2, "seed", params={"seed": "x"}),
    Case("params-no-tasks", 2, "tasks", params={"tasks": []}),
    Case("params-mode-unknown", 2, "--mode", args=("generate", "--task", "tiny", "--mode", "one_shot")),
    Case("params-task-typo", 2, "did you mean", args=("generate", "--task", "tinyy", "--mode", "zero_shot")),
    Case("params-custom-missing", 2, "nowhere.yaml", params={"custom_tasks": {"tiny": "nowhere.yaml"}}),
    Case("params-custom-name-mismatch", 2, "custom_tasks", spec={"name": "other"}),
    Case("params-journal-dir", 7, "journal", params=gen(journal="jdir"), files={"jdir": "<dir>"}),
    Case(
        "params-journal-under-file", 7, "journal", params=gen(journal="afile/j.sqlite"), files={"afile": "x"}
    ),
    Case(
        "params-budget-stops", 5, "generate.budget_usd", params=gen(price_in_per_mtok=1000.0, budget_usd=0.05)
    ),
    Case(
        "params-huge-per-label-no-diversity",
        5,
        "generate.budget_usd",
        params=gen(per_label=10**9, diversity_every=0, price_in_per_mtok=1000.0, budget_usd=0.3),
        max_wall_s=30,
    ),
    Case(
        "params-huge-diversity-every",
        5,
        "generate.budget_usd",
        params=gen(per_label=10**7, diversity_every=10**7, price_in_per_mtok=1000.0, budget_usd=0.3),
        max_wall_s=30,
    ),
    # --- secrets ------------------------------------------------------------------------------------------
    Case("secret-pasted-sk-key", 2, "generate.endpoint.api_key_env", params=ep(api_key_env=SECRET)),
    Case("secret-pasted-token", 2, "generate.endpoint.api_key_env", params=ep(api_key_env=TOKEN_SECRET)),
    Case("secret-env-name-dash", 2, "generate.endpoint.api_key_env", params=ep(api_key_env="MY-KEY")),
    Case(
        "secret-env-unset-remote",
        4,
        "MISSING_KEY_VAR",
        params=ep(api_key_env="MISSING_KEY_VAR", base_url="https://api.example.invalid/v1"),
    ),
    Case("secret-key-in-query", 4, "127.0.0.1", params={}, server={}),  # base_url set in the test
    Case("secret-wrong-key-401", 4, f"${KEY_VAR}", server={"api_key": "sk-the-right-one"}),
    Case("secret-success-leaves-no-key", 0, rerun_pays_nothing=True),
    Case("secret-key-in-whole-endpoint", 2, "generate.endpoint", params={G: {EP: SECRET}}),
    Case("secret-key-as-unknown-key", 2, "generate", params={G: {SECRET: 1}}),
    # --- task specs ---------------------------------------------------------------------------------------
    Case(
        "spec-unknown-placeholder",
        2,
        "prompt.generation",
        spec=prompt(generation="Write {label} in a {tone} tone."),
    ),
    Case("spec-unbalanced-brace", 2, "prompt.generation", spec=prompt(generation="Write {label about it.")),
    Case("spec-closing-brace", 2, "prompt.generation", spec=prompt(generation="Write {label} }.")),
    Case(
        "spec-json-braces",
        2,
        "prompt.generation",
        spec=prompt(generation='Write {label} as {"text": "..."}.'),
    ),
    Case("spec-json-braces-escaped", 0, spec=prompt(generation="Write {label}; not as {{json}}.")),
    Case("spec-attribute-field", 2, "prompt.generation", spec=prompt(generation="Write {label.__class__}.")),
    Case("spec-index-field", 2, "prompt.generation", spec=prompt(generation="Write {label[0]} {label}.")),
    Case("spec-positional-field", 2, "prompt.generation", spec=prompt(generation="Write {0} {label}.")),
    Case("spec-conversion", 2, "prompt.generation", spec=prompt(generation="Write {label!r}.")),
    Case("spec-format-spec-nested", 2, "prompt.generation", spec=prompt(generation="Write {label:{style}}.")),
    Case("spec-no-label-field", 2, "prompt.generation", spec=prompt(generation="Write a review.")),
    Case("spec-diversity-field", 2, "prompt.diversity", spec=prompt(diversity="Unlike these: {prev}")),
    Case("spec-diversity-brace", 2, "prompt.diversity", spec=prompt(diversity="Unlike {previous}: {")),
    Case("spec-few-shot-field", 2, "prompt.few_shot", spec=prompt(few_shot="Like {example}: {label}")),
    Case("spec-few-shot-brace", 2, "prompt.few_shot", spec=prompt(few_shot="Like {examples} {"), args=FEW),
    Case(
        "spec-label-with-braces-ok",
        0,
        spec={
            "labels": [
                {"name": "pos", "description": "good", "instruction": "a {positive} review"},
                {"name": "neg", "description": "bad", "instruction": "a negative review"},
            ]
        },
    ),
    Case("spec-one-label", 2, "labels", spec={"labels": [{"name": "pos", "description": "good"}]}),
    Case(
        "spec-duplicate-labels",
        2,
        "labels",
        spec={"labels": [{"name": "pos", "description": "a"}, {"name": "pos", "description": "b"}]},
    ),
    Case("spec-no-styles", 2, "prompt.styles", spec=prompt(styles=[])),
    Case("spec-length-zero", 2, "prompt.length_words", spec=prompt(length_words=0)),
    Case("spec-missing-prompt", 2, "prompt", spec={"prompt": None}),
    Case("spec-not-yaml", 2, "tiny.yaml", raw_spec="name: [tiny\n"),
    Case("spec-a-list", 2, "tiny.yaml", raw_spec="- tiny\n"),
    Case("spec-not-utf8", 2, "tiny.yaml", raw_spec=b"name: tiny\ndescription: \xff\xfe\n"),
    Case("spec-a-directory", 2, "tiny.yaml", raw_spec=None, files={"tiny.yaml": "<dir>"}),
    Case("spec-bad-name", 2, "name", spec={"name": "Tiny Task"}),
    Case("spec-subjectivity", 2, "subjectivity", spec={"subjectivity": 9}),
    # --- data files ---------------------------------------------------------------------------------------
    Case("data-train-missing", 3, "train.jsonl", args=FEW, files={}),  # file removed in the test
    Case(
        "data-train-malformed",
        3,
        "train.jsonl:2",
        args=FEW,
        files={"data/real/tiny/train.jsonl": '{"text": "a", "label": "pos"}\n{"text": \n'},
    ),
    Case(
        "data-train-no-text",
        3,
        "train.jsonl:1",
        args=FEW,
        files={"data/real/tiny/train.jsonl": '{"label": "pos"}\n'},
    ),
    Case(
        "data-train-not-rows", 3, "train.jsonl:1", args=FEW, files={"data/real/tiny/train.jsonl": "[1, 2]\n"}
    ),
    Case(
        "data-train-not-utf8",
        3,
        "train.jsonl",
        args=FEW,
        files={"data/real/tiny/train.jsonl": b'{"text": "\xff", "label": "pos"}\n'},
    ),
    Case("data-train-a-directory", 3, "train.jsonl", args=FEW, files={"data/real/tiny/train.jsonl": "<dir>"}),
    Case("data-train-empty-few-shot", 0, args=FEW, files={"data/real/tiny/train.jsonl": ""}),
    Case(
        "data-parquet-garbage",
        3,
        "train.parquet",
        args=PREP,
        files={"train.parquet": b"PAR1garbage" * 10},
        spec={"source": {"files": {"train": "train.parquet", "test": "test.csv"}}},
    ),
    Case("data-csv-unterminated", 3, "train.csv", args=PREP, files={"train.csv": 'text,label\n"open,pos\n'}),
    Case("data-csv-not-utf8", 3, "train.csv", args=PREP, files={"train.csv": b"\xff\xfe\x00garbage"}),
    Case("data-csv-missing", 3, "train.csv", args=PREP, files={"train.csv": None}),
    # --- model answers ------------------------------------------------------------------------------------
    Case(
        "answer-json-with-label",
        8,
        "generate.per_label",
        server={"answer_text": '{"label": "pos", "text": "A fine film."}'},
        rerun_pays_nothing=True,
    ),
    Case("answer-dict-pair", 8, "generate.per_label", server={"answer_text": 'Great film! "label": "pos"'}),
    Case("answer-bare-label", 8, "generate.per_label", server={"answer_text": "pos"}),
    Case(
        "answer-lone-surrogate",
        8,
        "generate.per_label",
        server={"answer_text": "A film \ud800 of note indeed"},
        rerun_pays_nothing=True,
    ),
    Case(
        "answer-control-chars", 8, "generate.per_label", server={"answer_text": "A film\x00 of note indeed"}
    ),
    Case("answer-empty", 8, "generate.per_label", server={"answer_text": ""}),
    Case(
        "answer-refusal",
        8,
        "generate.per_label",
        server={"answer_text": "I'm sorry, as an AI language model I cannot write reviews."},
    ),
    Case("answer-too-long", 8, "generate.per_label", server={"answer_text": LONG}),
    Case(
        "answer-all-malformed",
        8,
        "generate.per_label",
        server={"fault_rates": {"malformed": 1.0}},
        rerun_pays_nothing=True,
    ),
    Case(
        "answer-all-empty-choices",
        8,
        "generate.per_label",
        server={"fault_rates": {"empty": 1.0}},
        rerun_pays_nothing=True,
    ),
    Case(
        "answer-some-unusable-short",
        8,
        "allow_short",
        params=gen(max_attempts_factor=1),
        server={"faults": {1: "malformed"}},
    ),
    Case(
        "answer-some-unusable-allowed",
        0,
        params=gen(max_attempts_factor=1, allow_short=True),
        server={"faults": {1: "malformed"}},
        rerun_pays_nothing=True,
    ),
    Case("answer-401", 4, "HTTP 401", server={"faults": {1: "401"}}),
    Case("answer-404", 4, "HTTP 404", server={"faults": {1: "404"}}),
    Case("answer-400", 4, "HTTP 400", server={"faults": {1: "400"}}),
    Case(
        "answer-429-forever", 4, "max_retries", server={"fault_rates": {"429": 1.0}}, params=ep(max_retries=1)
    ),
    Case(
        "answer-500-forever", 4, "max_retries", server={"fault_rates": {"500": 1.0}}, params=ep(max_retries=1)
    ),
    Case("answer-retry-after-huge", 4, "wait", server={"faults": {1: "429-ra"}, "retry_after": "100000"}),
    Case("answer-slower-than-timeout", 0, params=ep(timeout_s=0.2), server={"latency_s": 0.6}),
    Case(
        "answer-random-faults",
        0,
        params=ep(max_retries=8),
        server={"fault_rates": {"429": 0.1, "500": 0.1, "reset": 0.1}, "seed": 3},
    ),
    Case("answer-unreachable", 4, "max_retries", params=ep(base_url="http://127.0.0.1:9/v1", max_retries=1)),
    # --- journal ------------------------------------------------------------------------------------------
    Case("journal-zero-bytes", 7, "cache check", files={".synthbench/journal.sqlite": b""}),
    Case("journal-garbage", 7, "cache check", files={".synthbench/journal.sqlite": b"not a database" * 100}),
    Case(
        "journal-garbage-stats",
        7,
        "cache check",
        files={".synthbench/journal.sqlite": b"x" * 5000},
        args=("cache", "stats"),
    ),
    Case(
        "journal-check-garbage",
        7,
        "--salvage",
        files={".synthbench/journal.sqlite": b"x" * 5000},
        args=("cache", "check"),
    ),
    Case("journal-salvage-then-generate", 0, scenario="salvage"),
    Case("journal-stale-lease", 0, scenario="stale_lease"),
    Case("journal-old-schema-keeps-keys", 0, scenario="old_schema"),
    # --- concurrency and spelling -------------------------------------------------------------------------
    Case("concurrent-two-identical", 0, scenario="two_at_once"),
    Case("concurrent-three-identical", 0, scenario="three_at_once"),
    Case("concurrent-two-spellings", 0, scenario="two_spellings"),
    Case("concurrent-two-checkouts-one-journal", 0, scenario="two_worktrees"),
    Case("spelling-trailing-slash-reuses", 0, scenario="respell:{base}/"),
    Case("spelling-localhost-reuses", 0, scenario="respell:localhost"),
    Case("spelling-upper-case-host-reuses", 0, scenario="respell:LOCALHOST"),
    # --- interrupts ---------------------------------------------------------------------------------------
    Case("interrupt-sigint-in-flight", 130, "interrupted", scenario="signal:SIGINT"),
    Case("interrupt-sigterm-in-flight", 143, "terminated", scenario="signal:SIGTERM"),
    Case("interrupt-sigterm-waiting-on-lease", 143, "terminated", scenario="sigterm_waiting"),
    Case("interrupt-kill9-then-resume", 0, scenario="kill9", allow_repaid=4),
    Case(
        "interrupt-sigterm-in-backoff",
        143,
        "terminated",
        scenario="signal:SIGTERM",
        server={"fault_rates": {"503": 1.0}},
        params=ep(max_retries=50),
    ),
    Case("interrupt-parent-dies", 143, None, scenario="parent_dies"),
    # --- through dvc repro: a failed stage leaves nothing DVC trusts ---------------------------------------
    Case("dvc-short-labels", 8, "generate.per_label", scenario="dvc", server={"answer_text": "pos"}),
    Case("dvc-pasted-key", 2, "api_key_env", scenario="dvc", params=ep(api_key_env=SECRET)),
    Case("dvc-endpoint-401", 4, "HTTP 401", scenario="dvc", server={"faults": {1: "401"}}),
    Case(
        "dvc-sigterm",
        143,
        "terminated",
        scenario="dvc:sigterm",
        server={"latency_s": 0.3},
        params=gen(per_label=6),
    ),
    Case(
        "dvc-sigterm-through-sh",
        143,
        "terminated",
        scenario="dvc:sigterm-sh",
        server={"latency_s": 0.3},
        params=gen(per_label=6),
    ),
    Case(
        "dvc-kill-9-process-group",
        137,
        None,
        scenario="dvc:kill-group",
        server={"latency_s": 0.3},
        params=gen(per_label=6),
        killed=True,
    ),
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with serve(ServerConfig()) as handle:
        yield handle


def scenario_runner(name: str) -> Callable[[Path, ServerHandle, Case], Outcome]:
    from tests import abuse_scenarios

    kind, _, arg = name.partition(":")
    return lambda root, server, case: abuse_scenarios.SCENARIOS[kind](root, server, case, arg)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_abuse(case: Case, server: ServerHandle, tmp_path: Path) -> None:
    server.configure(**ServerConfig().to_json())
    server.reset()
    if case.server:
        server.configure(**case.server)
    if case.id == "secret-key-in-query":
        case.params = {G: {EP: {"base_url": f"{server.base_url}?api_key={SECRET}"}}}
    inputs = write_project(tmp_path, server, case)
    if case.id == "data-train-missing":
        (tmp_path / "data/real/tiny/train.jsonl").unlink()
    try:
        outcome = (
            scenario_runner(case.scenario)(tmp_path, server, case)
            if case.scenario
            else run(tmp_path, case.id, *stage_args(case, tmp_path))
        )
        if case.rerun_pays_nothing:
            paid = server.stats()["answered"]
            again = run(tmp_path, case.id, *stage_args(case, tmp_path))
            assert server.stats()["answered"] == paid, "the re-run paid again"
            assert again.code == case.expect and "Traceback" not in again.text
        server.wait_idle()
        check(case, outcome, tmp_path, server, inputs)
    finally:
        reap(case.id)


def check(case: Case, outcome: Outcome, root: Path, server: ServerHandle, inputs: set[Path]) -> None:
    TOTALS.cases += 1
    stats = server.stats()
    problems = []
    if "Traceback" in outcome.text:
        TOTALS.tracebacks += 1
        problems.append("traceback")
    if outcome.code != case.expect:
        TOTALS.wrong_exit += 1
        problems.append(f"exit {outcome.code} != {case.expect}")
    errors = error_lines(outcome)
    if case.expect and not case.killed and (len(errors) != 1 or (case.key and case.key not in errors[0])):
        TOTALS.bad_error_line += 1
        problems.append(f"error lines {errors} (want one naming {case.key!r})")
    if not case.expect and errors:
        TOTALS.bad_error_line += 1
        problems.append(f"error lines on success: {errors}")
    trusted = [rel for rel in OUTPUTS if (root / rel).exists()]
    if case.expect and trusted:
        TOTALS.trusted_output += 1
        problems.append(f"outputs left by a failed run: {trusted}")
    repaid = stats["answered"] - stats["fingerprints"]
    if case.check_paid and repaid > case.allow_repaid:
        TOTALS.repaid += repaid
        problems.append(f"{repaid} requests paid twice")
    if repaid and case.allow_repaid:
        TOTALS.notes.append(f"{case.id}: {repaid} answers in flight at kill -9 paid again")
    leaks = secret_hits(root, inputs, outcome.text)
    if leaks:
        TOTALS.leaks += len(leaks)
        problems.append(f"key value found: {leaks}")
    time.sleep(0.2)
    left = leftovers(case.id)
    if left:
        TOTALS.orphans += len(left)
        problems.append(f"processes left: {left}")
    if outcome.wall_s > case.max_wall_s:
        problems.append(f"took {outcome.wall_s:.1f} s")
    assert not problems, (
        f"{case.id}: {problems}\n--- stdout\n{outcome.stdout[-1500:]}\n--- stderr\n{outcome.stderr[-2500:]}"
    )


def test_matrix_totals() -> None:
    """Runs last (file order): the totals of the cases that ran, all zero."""
    print("\n" + TOTALS.line())
    for note in TOTALS.notes:
        print("  note:", note)
    if TOTALS.cases:
        assert (TOTALS.tracebacks, TOTALS.repaid, TOTALS.leaks, TOTALS.orphans) == (0, 0, 0, 0)


# keep names used only by scenarios importable from here
__all__ = [
    "KEY_VAR",
    "base_params",
    "finish",
    "interrupt_when",
    "json",
    "merge",
    "signal",
    "sqlite3",
    "start",
    "subprocess",
    "threading",
    "yaml",
]
