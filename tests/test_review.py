"""synthbench review: the stratified sample, the decision store (atomic, keyed by content hash), the HTTP server
the page talks to, how verdicts change training rows, the review stats and report section, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from tests.review_fixtures import LABELS, params, synthetic_rows, write_project
from tests.test_training_data import FRESH, TASK

from synthbench.analysis.review_section import review_section
from synthbench.data.review_stats import review_stats, wilson_interval
from synthbench.data.reviews import DecisionStore, content_hash, read_decisions
from synthbench.layout import Layout
from synthbench.review.sample import stratified_sample
from synthbench.review.server import ReviewServer
from synthbench.review.session import open_session
from synthbench.training.data import build_training_data


def test_content_hash_ignores_case_and_spacing_but_not_words() -> None:
    assert content_hash("A  Fine\tfilm ") == content_hash("a fine film")
    assert content_hash("a fine film") != content_hash("a fine movie")
    assert len(content_hash("x")) == 16


def test_sample_keeps_label_shares_is_seeded_and_interleaves_labels() -> None:
    rows = synthetic_rows("zero_shot", n_fresh=30, n_rotten=10)
    sample = stratified_sample(rows, 8, seed=3)
    assert Counter(row["label"] for row in sample) == {"fresh": 6, "rotten": 2}
    assert [row["label"] for row in sample[:4]] == ["fresh", "rotten", "fresh", "rotten"]
    assert sample == stratified_sample(rows, 8, seed=3)
    assert sample != stratified_sample(rows, 8, seed=4)
    # a rare label still gets a row; n beyond the file returns every distinct text once
    assert Counter(r["label"] for r in stratified_sample(synthetic_rows("z", 39, 1), 5, 0)) == {
        "fresh": 4,
        "rotten": 1,
    }
    assert len(stratified_sample(rows + rows, 500, 0)) == 40


def test_each_decision_is_on_disk_sorted_by_hash_when_record_returns(tmp_path: Path) -> None:
    path = tmp_path / "review.jsonl"
    store = DecisionStore(path, LABELS)
    texts = [f"text number {i}" for i in range(5)]
    for text in texts:
        store.record(text, "fresh", "ok")
        assert content_hash(text) in read_decisions(path, LABELS)  # no buffering: a crash now loses nothing
    store.record(texts[1], "fresh", "wrong_label", relabel="rotten")
    store.record(texts[2], "fresh", None)  # clearing removes the line
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["hash"] for line in lines] == sorted(content_hash(t) for t in texts if t != texts[2])
    by_hash = {line["hash"]: line for line in lines}
    assert by_hash[content_hash(texts[1])] | {"at": ""} == {
        "hash": content_hash(texts[1]),
        "label": "fresh",
        "verdict": "wrong_label",
        "relabel": "rotten",
        "text": texts[1],
        "at": "",
    }
    assert "relabel" not in by_hash[content_hash(texts[0])]


def test_a_killed_reviewer_loses_no_acknowledged_decision(tmp_path: Path) -> None:
    """A child records decisions as fast as it can and prints each acknowledgement; SIGKILL mid-stream must leave
    a valid file holding at least every acknowledged decision (atomic replace, never a torn line)."""
    path = tmp_path / "review.jsonl"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        from pathlib import Path
        from synthbench.data.reviews import DecisionStore
        store = DecisionStore(Path({str(path)!r}), ["fresh", "rotten"])
        for i in range(100000):
            store.record(f"text {{i}} " + "padding " * 50, "fresh", "unnatural")
            print(i, flush=True)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    acknowledged = [int(child.stdout.readline()) for _ in range(40)]
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    decisions = read_decisions(path, LABELS)  # parses: no torn line
    assert len(decisions) >= acknowledged[-1] + 1
    assert {content_hash(f"text {i} " + "padding " * 50) for i in acknowledged} <= set(decisions)


def test_verdicts_drop_rejects_and_relabel_before_training(tmp_path: Path) -> None:
    layout = write_project(tmp_path)
    rows = synthetic_rows("zero_shot")
    store = DecisionStore(layout.review(TASK, "zero_shot"), LABELS)
    store.record(rows[0]["text"], "fresh", "ok")
    store.record(rows[1]["text"], "fresh", "off_task")
    store.record(rows[2]["text"], "fresh", "unnatural")
    store.record(rows[3]["text"], "fresh", "wrong_label")  # no correction: dropped
    store.record(rows[4]["text"].upper(), "fresh", "wrong_label", relabel="rotten")  # the hash ignores case
    store.record(
        rows[12]["text"], "fresh", "wrong_label", relabel="rotten"
    )  # judged as fresh, but it is rotten now
    data = build_training_data(TASK, "real+zero_shot", LABELS, [], 0, Layout(tmp_path))
    synthetic = [row for row, origin in zip(data.rows, data.origins, strict=True) if origin == "zero_shot"]
    texts = {text for text, _ in synthetic}
    assert len(synthetic) == 24 - 3
    assert not {rows[i]["text"] for i in (1, 2, 3)} & texts
    assert (rows[4]["text"], "rotten") in synthetic and (rows[0]["text"], "fresh") in synthetic
    assert (rows[12]["text"], "rotten") in synthetic  # a wrong-label verdict on another label does not apply
    assert len([o for o in data.origins if o == "real"]) == 12  # real rows are never touched
    # the other mode is untouched
    assert len(build_training_data(TASK, "few_shot", LABELS, [], 0, Layout(tmp_path)).rows) == 24


def _http(url: str, payload: dict | None = None) -> tuple[int, dict | str]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read().decode()
            status = answer.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    return status, json.loads(body) if body.startswith("{") else body


def test_server_serves_the_page_and_sample_and_writes_each_decision(tmp_path: Path) -> None:
    layout = write_project(tmp_path)
    session = open_session(TASK, "few_shot", params(tmp_path), layout, n=10)
    server = ReviewServer(session)
    server.start_background()
    try:
        status, page = _http(server.url)
        assert status == 200 and "synthbench review" in page and "<script>" in page
        assert "http" not in page.replace("http://www.w3.org", "").split("<script>")[0]  # no external assets
        status, sample = _http(server.url + "api/sample")
        assert status == 200 and sample["labels"] == LABELS and sample["n_synthetic"] == 24
        assert len(sample["rows"]) == 10 and Counter(r["label"] for r in sample["rows"]) == {
            "fresh": 5,
            "rotten": 5,
        }
        first, second = sample["rows"][0], sample["rows"][1]
        status, answer = _http(server.url + "api/decision", {"hash": first["hash"], "verdict": "off_task"})
        assert status == 200 and answer["decision"]["verdict"] == "off_task" and answer["reviewed"] == 1
        assert read_decisions(layout.review(TASK, "few_shot"))[first["hash"]].verdict == "off_task"
        _http(
            server.url + "api/decision",
            {
                "hash": second["hash"],
                "verdict": "wrong_label",
                "relabel": "rotten" if second["label"] == "fresh" else "fresh",
            },
        )
        assert _http(server.url + "api/decision", {"hash": first["hash"], "verdict": "meh"})[0] == 400
        assert _http(server.url + "api/decision", {"hash": "0" * 16, "verdict": "ok"})[0] == 400
        status, answer = _http(
            server.url + "api/decision",
            {"hash": first["hash"], "verdict": "wrong_label", "relabel": first["label"]},
        )
        assert status == 400 and "cannot relabel" in answer["error"]
        assert (
            _http(server.url + "api/decision", {"hash": first["hash"], "verdict": "ok", "relabel": "nope"})[0]
            == 200
        )  # relabel ignored unless wrong
    finally:
        server.shutdown()
        server.server_close()
    # a new session (a restarted server, a reloaded page) shows the same sample with its decisions
    again = open_session(TASK, "few_shot", params(tmp_path), layout, n=10).payload()
    assert [r["hash"] for r in again["rows"]] == [r["hash"] for r in sample["rows"]]
    assert again["rows"][0]["decision"]["verdict"] == "ok"
    assert (
        again["rows"][1]["decision"]["verdict"] == "wrong_label" and again["rows"][1]["decision"]["relabel"]
    )


def test_rows_show_oracle_and_the_few_shot_examples_their_prompt_showed(tmp_path: Path) -> None:
    layout = write_project(tmp_path)
    few = open_session(TASK, "few_shot", params(tmp_path), layout, n=24)
    real_fresh = set(FRESH[:6])  # write_tiny_task's real train rows of the label fresh
    for row in few.rows:
        assert len(row.examples) == 2  # generate.few_shot_k in the fixture's params
        if row.label == "fresh":
            assert set(row.examples) <= real_fresh
    with_oracle = [row for row in few.rows if row.oracle_label is not None]
    assert len(with_oracle) == 2 and all(row.oracle_confidence == 0.875 for row in with_oracle)
    assert all(not row.examples for row in open_session(TASK, "zero_shot", params(tmp_path), layout).rows)


def test_wilson_interval_matches_reference_values() -> None:
    # Brown, Cai & DasGupta (2001); also statsmodels proportion_confint(method="wilson")
    assert wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_stats_and_report_section_give_reject_rates_per_label_and_reason(tmp_path: Path) -> None:
    layout = write_project(tmp_path)
    rows = synthetic_rows("few_shot")
    store = DecisionStore(layout.review(TASK, "few_shot"), LABELS)
    for row, verdict in zip(rows[:4], ("ok", "ok", "wrong_label", "off_task"), strict=True):
        store.record(row["text"], row["label"], verdict)
    for row, verdict in zip(rows[12:16], ("ok", "unnatural", "wrong_label", "ok"), strict=True):
        store.record(row["text"], row["label"], verdict)
    store.record("a text that a regeneration removed", "fresh", "unnatural")
    stats = review_stats(TASK, "few_shot", rows, read_decisions(layout.review(TASK, "few_shot")), LABELS)
    assert (stats.n_reviewed, stats.n_rejected, stats.n_stale) == (8, 4, 1)
    assert stats.label_noise == pytest.approx((0.25, *wilson_interval(2, 8)))
    blocks = review_section([TASK], ["zero_shot", "few_shot"], layout)
    table = next(block for block in blocks if hasattr(block, "rows"))
    assert table.rows == [
        [TASK, "few_shot", "fresh", "4", "50.0%", "1", "1", "0"],
        [TASK, "few_shot", "rotten", "4", "50.0%", "1", "0", "1"],
        [TASK, "few_shot", "all", "8", "50.0%", "2", "1", "1"],
    ]
    noise = blocks[-1].items[0]
    assert "label noise 25.0% (Wilson 95% interval 7.1%–59.1%" in noise
    assert review_section([TASK], ["zero_shot"], layout)[1].text.startswith(
        "No synthetic rows have been reviewed"
    )


def test_bad_input_is_one_error_line(tmp_path: Path, cli) -> None:
    layout = write_project(tmp_path, modes=("zero_shot",))
    cases = [
        (["review", "--task", "nope", "--mode", "zero_shot"], "unknown task 'nope'"),
        (["review", "--task", TASK, "--mode", "few_shot"], "unknown mode 'few_shot'"),
        (["export", "--task", TASK, "--mode", "few_shot"], "unknown mode 'few_shot'"),
    ]
    layout.synthetic(TASK, "zero_shot").unlink()
    cases.append((["review", "--task", TASK, "--mode", "zero_shot"], "no synthetic rows yet"))
    review = layout.review(TASK, "zero_shot")
    for args, message in cases:
        done = cli(*args, cwd=tmp_path)
        assert done.returncode in (2, 3) and done.stderr.startswith("error: ") and message in done.stderr, (
            args
        )
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert cli("review", "--task", TASK, "--mode", "zero_shot", "--check", cwd=tmp_path).returncode == 0
    assert review.read_text() == ""  # --check creates the empty file a DVC stage depends on
    review.write_text('{"hash": "abc", "label": "fresh", "verdict": "ok"}\n{"hash": "abd", "lab\n')
    done = cli("review", "--task", TASK, "--mode", "zero_shot", "--check", cwd=tmp_path)
    assert done.returncode == 3 and done.stderr.startswith(
        f"error: {Layout().review(TASK, 'zero_shot')}:2: not valid"
    )
    assert len(done.stderr.strip().splitlines()) == 1
    review.write_text('{"hash": "abc", "label": "fresh", "verdict": "wrong_label", "relabel": "stale"}\n')
    done = cli("review", "--task", TASK, "--mode", "zero_shot", "--check", cwd=tmp_path)
    assert done.returncode == 3 and "relabel 'stale' is not one of the task's labels" in done.stderr
