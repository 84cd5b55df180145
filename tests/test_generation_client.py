"""ChatClient, Journal and Batch API mode against a real OpenAI-compatible HTTP server on loopback, driven by the
real ``openai`` client. Every test checks the invariant that matters for paid calls: each distinct request is
answered by the server exactly once and journaled exactly once, whatever goes wrong in between."""

from __future__ import annotations

import asyncio
import email.utils
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import openai
import pytest

from synthbench.errors import BudgetExceeded, EndpointError
from synthbench.generation.batch import poll_batch, submit_batch
from synthbench.generation.batch_store import BatchStore
from synthbench.generation.client import ChatClient, ChatRequest, EndpointConfig, _http_client
from synthbench.generation.journal import Completion, Journal
from synthbench.generation.pacing import AdaptiveConcurrency
from synthbench.testing.openai_server import ServerConfig, ServerHandle, serve

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_requests(n: int, *, tag: str = "r", max_tokens: int = 20) -> list[ChatRequest]:
    """``n`` distinct deterministic requests (the kill -9 worker builds the same ones)."""
    return [
        ChatRequest(
            key=f"{tag}-{i:04d}",
            messages=[
                {"role": "system", "content": "You write short product reviews."},
                {"role": "user", "content": f"Write review number {i} ({tag})."},
            ],
            params={"temperature": 0.9, "top_p": 0.95, "max_tokens": max_tokens, "seed": i},
            meta={
                "task": "reviews",
                "mode": "zero_shot",
                "label": "positive" if i % 2 else "negative",
                "index": i,
            },
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def _running_server() -> ServerHandle:
    with serve() as handle:
        yield handle


@pytest.fixture
def server(_running_server: ServerHandle) -> ServerHandle:
    """The module's server with default behaviour and zeroed counters."""
    _running_server.configure(**ServerConfig().to_json())
    _running_server.reset()
    return _running_server


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    with Journal(tmp_path / "journal.sqlite") as opened:
        yield opened


def endpoint(server: ServerHandle, **overrides: object) -> EndpointConfig:
    settings: dict[str, object] = {
        "base_url": server.base_url,
        "model": "test-model",
        "api_key_env": "SYNTHBENCH_TEST_KEY",
        "timeout_s": 2.0,
        "max_retries": 6,
        "concurrency": 4,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.5,
    }
    settings.update(overrides)
    return EndpointConfig(**settings)  # type: ignore[arg-type]


def assert_each_answered_once(server: ServerHandle, journal: Journal, keys: set[str], answers: dict) -> None:
    stats = server.stats()
    assert set(answers) == keys
    assert journal.count() == len(keys)
    assert stats["answered"] == len(keys)
    assert stats["fingerprints"] == len(keys)


# -- faults ------------------------------------------------------------------------------------------------

FAULT_REASONS = {
    "429": "http_429",
    "429-ra": "http_429",
    "500": "http_500",
    "503": "http_503",
    "timeout": "timeout",
    "reset": "connection",
}
UNUSABLE_200 = {"malformed": "malformed_json", "empty": "empty_choices"}  # billed by the endpoint


@pytest.mark.parametrize("fault", sorted(FAULT_REASONS))
def test_each_fault_is_survived_without_loss_or_duplicates(
    server: ServerHandle, journal: Journal, fault: str
) -> None:
    server.configure(faults={1: fault, 4: fault, 7: fault}, retry_after="0.2", hang_s=1.0, latency_s=0.01)
    requests = make_requests(12)
    requests += requests[:3]  # duplicate keys in one call are sent once
    client = ChatClient(endpoint(server, timeout_s=0.5), journal)

    answers = client.run(requests)

    assert_each_answered_once(server, journal, {r.key for r in requests}, answers)
    assert server.stats()["faults"] == {fault: 3}
    assert client.stats.retries == {FAULT_REASONS[fault]: 3}
    assert client.stats.calls_made == 12 + 3
    assert client.stats.fresh == 12


@pytest.mark.parametrize("fault", sorted(UNUSABLE_200))
def test_an_unusable_200_is_journaled_as_unusable_and_never_paid_again(
    server: ServerHandle, journal: Journal, fault: str
) -> None:
    server.configure(faults={1: fault, 4: fault}, latency_s=0.01)
    requests = make_requests(8)
    client = ChatClient(endpoint(server, concurrency=1), journal)

    answers = client.run(requests)
    again = ChatClient(endpoint(server), journal).run(requests)

    assert_each_answered_once(server, journal, {r.key for r in requests}, answers)  # paid once each
    unusable = [a for a in answers.values() if a.finish_reason == f"unusable:{UNUSABLE_200[fault]}"]
    assert len(unusable) == 2 and all(a.text == "" for a in unusable)
    assert client.stats.unusable == 2 and client.stats.retries == {}
    assert again == answers and server.stats()["answered"] == 8


def test_random_mix_of_faults_loses_and_duplicates_nothing(server: ServerHandle, journal: Journal) -> None:
    kinds = ["429", "429-ra", "500", "503", "timeout", "reset", "malformed", "empty"]
    server.configure(fault_rates=dict.fromkeys(kinds, 0.03), seed=7, retry_after="0.1", hang_s=0.8)
    requests = make_requests(80)
    client = ChatClient(endpoint(server, timeout_s=0.4, concurrency=8, max_retries=10), journal)

    answers = client.run(requests)

    assert_each_answered_once(server, journal, {r.key for r in requests}, answers)
    faults = sum(server.stats()["faults"].values())
    assert faults > 0
    unusable = sum(server.stats()["faults"].get(kind, 0) for kind in UNUSABLE_200)
    assert sum(client.stats.retries.values()) == faults - unusable
    assert client.stats.unusable == unusable
    assert client.stats.calls_made == 80 + faults - unusable


def test_requests_go_through_the_sdks_aiohttp_transport() -> None:
    pytest.importorskip("aiohttp")
    assert isinstance(_http_client(), openai.DefaultAioHttpClient)


def test_without_aiohttp_the_sdks_httpx_client_is_used(
    server: ServerHandle, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(**_kwargs: object) -> None:
        raise RuntimeError(
            "To use the aiohttp client you must have installed the package with the `aiohttp` extra"
        )

    monkeypatch.setattr(openai, "DefaultAioHttpClient", missing)
    assert isinstance(_http_client(), openai.DefaultAsyncHttpxClient)
    server.configure(faults={1: "reset", 3: "timeout"}, hang_s=1.0)
    requests = make_requests(6)
    client = ChatClient(endpoint(server, timeout_s=0.5), journal)

    answers = client.run(requests)

    assert_each_answered_once(server, journal, {r.key for r in requests}, answers)
    assert client.stats.retries == {"connection": 1, "timeout": 1}


# -- journal -----------------------------------------------------------------------------------------------


def test_second_run_makes_no_calls_and_answers_are_journaled_before_use(
    server: ServerHandle, journal: Journal
) -> None:
    requests = make_requests(15)
    seen: list[tuple[str, bool]] = []

    def on_result(request: ChatRequest, completion: Completion, cached: bool) -> None:
        assert journal.get_many([request.key]) == {request.key: completion}  # journaled first
        seen.append((request.key, cached))

    first = ChatClient(endpoint(server), journal).run(requests, on_result)
    second_client = ChatClient(endpoint(server), journal)
    second = second_client.run(requests, on_result)

    assert second == first
    assert second_client.stats.calls_made == 0
    assert second_client.stats.cached == 15
    assert server.stats()["answered"] == 15
    assert sorted(seen) == sorted([(r.key, False) for r in requests] + [(r.key, True) for r in requests])
    meta = journal.meta(requests[3].key)
    assert meta is not None and meta["label"] == "positive" and meta["model"] == "test-model"


def test_answers_that_arrive_together_are_committed_together_before_use(
    server: ServerHandle, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.configure(latency_s=0.05)
    batches: list[list[str]] = []
    record_many = journal.record_many

    def spy(entries: list) -> None:
        batches.append([key for key, _, _ in entries])
        record_many(entries)

    monkeypatch.setattr(journal, "record_many", spy)
    delivered: list[str] = []

    def on_result(request: ChatRequest, completion: Completion, cached: bool) -> None:
        assert journal.get_many([request.key]) == {request.key: completion}  # its batch is committed
        delivered.append(request.key)

    requests = make_requests(64)
    answers = ChatClient(endpoint(server, concurrency=32), journal).run(requests, on_result)

    assert_each_answered_once(server, journal, {r.key for r in requests}, answers)
    assert sorted(key for batch in batches for key in batch) == sorted(delivered) == sorted(answers)
    assert max(len(batch) for batch in batches) > 1  # 32 answers at a time: some arrive in one loop turn


def test_a_journal_failure_stops_the_run_and_hands_on_only_committed_answers(
    server: ServerHandle, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.configure(latency_s=0.01)
    record_many = journal.record_many
    calls = 0

    def failing_third(entries: list) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise sqlite3.OperationalError("disk I/O error")
        record_many(entries)

    monkeypatch.setattr(journal, "record_many", failing_third)
    delivered: list[str] = []
    client = ChatClient(endpoint(server), journal)

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        client.run(make_requests(30), lambda request, completion, cached: delivered.append(request.key))

    journaled = set(journal.get_many([r.key for r in make_requests(30)]))
    assert set(delivered) == journaled
    assert 0 < len(journaled) < 30
    assert client.stats.fresh == len(journaled)


def test_record_many_commits_all_or_nothing(journal: Journal) -> None:
    good = Completion("an answer", 10, 2, "stop", "test-model", 0.1)
    unbindable = Completion("an answer", 10, 2, object(), "test-model", 0.1)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        journal.record_many([("k1", good, {}), ("k2", unbindable, {})])
    assert journal.count() == 0  # the first row was rolled back with the second
    journal.record_many([("k1", good, {"task": "t"}), ("k2", good, {"task": "t", "cost_usd": 0.5})])
    journal.record_many([("k1", Completion("other", 1, 1, None, "m", 0.0), {})])  # present: left unchanged
    assert journal.get_many(["k1", "k2"]) == {"k1": good, "k2": good}
    assert journal.stats()["by_task"] == {"t": 2}
    assert journal.stats()["cost_usd"] == 0.5


def test_journal_stats_and_prune(server: ServerHandle, journal: Journal) -> None:
    ChatClient(endpoint(server, price_in_per_mtok=1.0, price_out_per_mtok=2.0), journal).run(make_requests(6))
    other = [
        ChatRequest(r.key + "-b", r.messages, r.params, {**r.meta, "task": "news"}) for r in make_requests(4)
    ]
    ChatClient(endpoint(server), journal).run(other)

    stats = journal.stats()
    assert stats["rows"] == 10
    assert stats["by_task"] == {"news": 4, "reviews": 6}
    assert stats["by_mode"] == {"zero_shot": 10}
    assert stats["by_model"] == {"test-model": 10}
    assert stats["cost_usd"] > 0
    assert journal.prune(task="news") == 4
    assert journal.prune(model="some-other-model") == 0
    assert journal.prune(older_than_days=1.0) == 0
    assert journal.count() == 6


def test_resume_after_kill_makes_no_repeat_calls(server: ServerHandle, tmp_path: Path) -> None:
    server.configure(latency_s=0.1)
    journal_path = tmp_path / "killed.sqlite"
    worker = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[3])
        from test_generation_client import make_requests
        from synthbench.generation.client import ChatClient, EndpointConfig
        from synthbench.generation.journal import Journal

        with Journal(sys.argv[2]) as journal:
            config = EndpointConfig(base_url=sys.argv[1], model="test-model", api_key_env=None, concurrency=2)
            ChatClient(config, journal).run(make_requests(40))
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", worker, server.base_url, str(journal_path), str(REPO_ROOT / "tests")], env=env
    )
    try:
        deadline = time.monotonic() + 30
        while journaled_rows(journal_path) < 20:
            assert proc.poll() is None, "worker ended before it could be killed"
            assert time.monotonic() < deadline, "worker journaled too slowly"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    server.wait_idle()
    survived = journaled_rows(journal_path)
    assert 20 <= survived < 40
    server.reset()

    with Journal(journal_path) as journal:
        answers = ChatClient(endpoint(server), journal).run(make_requests(40))
        assert len(answers) == 40
        assert journal.count() == 40
    stats = server.stats()
    assert stats["answered"] == 40 - survived
    assert stats["fingerprints"] == 40 - survived


def journaled_rows(path: Path) -> int:
    """Rows in a journal another process is writing (0 until its schema exists)."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_cancellation_keeps_every_answer_that_arrived(server: ServerHandle, journal: Journal) -> None:
    server.configure(latency_s=0.05)
    requests = make_requests(40)
    delivered: list[str] = []

    async def cancel_midway() -> None:
        client = ChatClient(endpoint(server), journal)
        task = asyncio.create_task(
            client.complete_all(requests, lambda r, c, cached: delivered.append(r.key))
        )
        while len(delivered) < 10:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    kept = journal.count()
    assert kept == len(delivered) and 10 <= kept < 40
    server.wait_idle()
    server.reset()

    ChatClient(endpoint(server), journal).run(requests)
    assert journal.count() == 40
    assert server.stats()["answered"] == 40 - kept


# -- budget ------------------------------------------------------------------------------------------------


def test_budget_cap_stops_before_exceeding_and_rerun_with_higher_budget_completes(
    server: ServerHandle, journal: Journal
) -> None:
    prices = {"price_in_per_mtok": 1000.0, "price_out_per_mtok": 1000.0}  # $0.001 per token
    requests = make_requests(30)
    client = ChatClient(endpoint(server, budget_usd=0.2, **prices), journal)

    with pytest.raises(BudgetExceeded, match=r"spent \$0\.\d+ of \$0\.2000.*raise generate\.budget_usd"):
        client.run(requests)

    spent = journal.stats()["cost_usd"]
    assert 0.1 < spent <= 0.2
    assert spent == pytest.approx(client.stats.cost_usd)
    assert 0 < journal.count() < 30
    assert server.stats()["answered"] == journal.count()

    ChatClient(endpoint(server, budget_usd=5.0, **prices), journal).run(requests)
    assert journal.count() == 30
    assert server.stats()["answered"] == 30
    assert server.stats()["fingerprints"] == 30


# -- fatal errors ------------------------------------------------------------------------------------------


def test_fatal_401_stops_at_once_and_journal_stays_usable(server: ServerHandle, journal: Journal) -> None:
    server.configure(faults={5: "401"})
    requests = make_requests(20)
    client = ChatClient(endpoint(server, concurrency=1), journal)

    with pytest.raises(EndpointError, match=r"HTTP 401.*\$SYNTHBENCH_TEST_KEY") as caught:
        client.run(requests)

    assert "\n" not in str(caught.value)
    assert client.stats.calls_made == 5  # no retry, nothing sent after it
    assert journal.count() == 4
    server.configure(faults={})
    ChatClient(endpoint(server), journal).run(requests)
    assert journal.count() == 20
    assert server.stats()["answered"] == 20


def test_wrong_key_is_named_by_its_variable_never_shown(
    server: ServerHandle, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.configure(api_key="sk-right-key")
    monkeypatch.setenv("SYNTHBENCH_TEST_KEY", "sk-wrong-secret-value")
    with pytest.raises(EndpointError) as caught:
        ChatClient(endpoint(server), journal).run(make_requests(3))
    message = str(caught.value)
    assert "SYNTHBENCH_TEST_KEY" in message and "sk-wrong" not in message
    assert journal.count() == 0

    monkeypatch.setenv("SYNTHBENCH_TEST_KEY", "sk-right-key")
    assert len(ChatClient(endpoint(server), journal).run(make_requests(3))) == 3


@pytest.mark.parametrize("status", ["400", "404"])
def test_bad_request_and_unknown_model_are_not_retried(
    server: ServerHandle, journal: Journal, status: str
) -> None:
    server.configure(faults={1: status})
    client = ChatClient(endpoint(server, concurrency=1), journal)
    with pytest.raises(EndpointError, match=f"HTTP {status}"):
        client.run(make_requests(3))
    assert client.stats.calls_made == 1


def test_missing_key_for_remote_endpoint_is_a_one_line_error(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTHBENCH_ABSENT_KEY", raising=False)
    config = EndpointConfig(
        base_url="https://llm.example.com/v1", model="m", api_key_env="SYNTHBENCH_ABSENT_KEY"
    )
    with pytest.raises(EndpointError, match="SYNTHBENCH_ABSENT_KEY is not set"):
        ChatClient(config, journal)
    local = EndpointConfig(
        base_url="http://127.0.0.1:8080/v1", model="m", api_key_env="SYNTHBENCH_ABSENT_KEY"
    )
    assert repr(ChatClient(local, journal)) == "ChatClient(endpoint='http://127.0.0.1:8080/v1', model='m')"


def test_retries_exhausted_raise_endpoint_error_and_a_rerun_resumes(
    server: ServerHandle, journal: Journal
) -> None:
    server.configure(
        faults={n: "500" for n in range(4, 40)}
    )  # the first three answers arrive, then only 500s
    client = ChatClient(endpoint(server, concurrency=1, max_retries=2), journal)
    with pytest.raises(EndpointError, match=r"failed 3 times.*http_500.*re-run to resume"):
        client.run(make_requests(5))
    assert journal.count() == 3
    server.configure(faults={})
    server.reset()
    ChatClient(endpoint(server), journal).run(make_requests(5))
    assert journal.count() == 5
    assert server.stats()["answered"] == 2


# -- pacing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(server: ServerHandle, journal: Journal, form: str) -> None:
    value = "1" if form == "seconds" else email.utils.formatdate(time.time() + 2, usegmt=True)
    server.configure(faults={1: "429-ra"}, retry_after=value)
    ChatClient(endpoint(server, concurrency=1), journal).run(make_requests(1))
    first, second = server.stats()["arrivals"]
    assert second - first >= 0.99
    assert server.stats()["answered"] == 1


def test_429_without_retry_after_backs_off_and_cuts_concurrency(
    server: ServerHandle, journal: Journal
) -> None:
    server.configure(faults={1: "429", 2: "429", 3: "429"})
    client = ChatClient(endpoint(server, concurrency=1, backoff_base_s=0.2), journal)
    client.run(make_requests(1))
    arrivals = server.stats()["arrivals"]
    assert len(arrivals) == 4
    assert client.stats.retries == {"http_429": 3}
    assert client.stats.backoff_s > 0
    assert arrivals[-1] - arrivals[0] >= client.stats.backoff_s * 0.95

    server.reset()
    server.configure(faults={})
    client = ChatClient(endpoint(server, concurrency=8), journal)
    server.configure(faults={2: "429"})
    client.run(make_requests(20, tag="cut"))
    assert (
        client.stats.concurrency_min < 8
    )  # cut to the requests still in flight (see the limiter test below)


def test_adaptive_limit_cuts_to_what_the_server_held_halves_when_that_was_not_enough_and_recovers() -> None:
    limiter = AdaptiveConcurrency(96)

    async def acquire(n: int) -> None:
        for _ in range(n):
            await limiter.acquire()

    asyncio.run(acquire(96))
    burst_sent = time.monotonic()
    # A server with 64 slots rejects 32 of the burst: each rejection that comes back leaves fewer requests in
    # flight, and the limit follows them down to what the server holds, not to half of 96.
    for _ in range(32):
        limiter.overloaded(burst_sent)
        limiter.release()
    assert (limiter.allowed, limiter.ceiling, limiter.lowest, limiter.in_flight) == (64, 64, 64, 64)

    # One finishes, its successor is sent after the cut and rejected too, before the limit grew back by one
    # request: cutting to 64 was not enough (a rate limit, say), so halve.
    limiter.succeeded(0.2)
    limiter.release()
    asyncio.run(acquire(1))
    limiter.overloaded(time.monotonic() + 0.001)
    limiter.release()
    assert (limiter.allowed, limiter.lowest) == (32, 32)
    assert limiter.ceiling == 63

    # Recovery: fast (one per success) up to 90% of the level that overloaded, then ≈ one per round trip of
    # successes up to it, then probing beyond it, up to the configured maximum.
    for _ in range(63):
        limiter.succeeded(0.2)
    assert 56 <= limiter.allowed < 60
    for _ in range(64 * 8):
        limiter.succeeded(0.2)
    assert 63 <= limiter.allowed <= 65
    for _ in range(64 * 200):
        limiter.succeeded(0.2)
    assert limiter.allowed == 96

    # A 429 after the limit has regrown is a new event: cut to the requests still in flight, not halved.
    limiter.in_flight = 80
    limiter.overloaded(time.monotonic() + 0.002)
    assert limiter.allowed == 79
    assert limiter.lowest == 32


def test_capacity_429s_shrink_concurrency_and_lose_nothing(server: ServerHandle, journal: Journal) -> None:
    server.configure(capacity=4, latency_s=0.05)
    requests = make_requests(60)
    client = ChatClient(endpoint(server, concurrency=16, max_retries=20), journal)

    answers = client.run(requests)

    assert_each_answered_once(server, journal, {r.key for r in requests}, answers)
    stats = server.stats()
    assert stats["rejected_capacity"] > 0
    assert stats["max_in_service"] <= 4
    assert client.stats.concurrency_min <= 8
    assert client.stats.retries["http_429"] == stats["rejected_capacity"]


def test_rising_latency_reduces_concurrency_without_any_429(server: ServerHandle, journal: Journal) -> None:
    server.configure(capacity=4, overflow="queue", latency_s=0.04)  # vLLM-like: queues, never 429s
    requests = make_requests(240)
    client = ChatClient(endpoint(server, concurrency=32), journal)

    answers = client.run(requests)

    assert_each_answered_once(server, journal, {r.key for r in requests}, answers)
    assert server.stats()["rejected_capacity"] == 0
    assert client.stats.retries == {}
    # How far AIMD cuts depends on CPU timing; that it cuts clearly below the cap is the behaviour under test.
    assert client.stats.concurrency_min <= 24


@pytest.mark.parametrize(("limit", "minimum_s"), [({"rpm": 600.0}, 1.4), ({"tpm": 60_000.0}, 1.2)])
def test_rate_buckets_pace_requests(
    server: ServerHandle, journal: Journal, limit: dict[str, float], minimum_s: float
) -> None:
    # rpm 600 = 10/s with a burst of 10: 25 requests need ≥ 1.5 s. tpm 60k = 1000 tokens/s, burst 1000;
    # each request counts ~12 prompt + 100 max_tokens: 22 requests ≈ 2460 tokens need ≥ 1.46 s.
    n = 25 if "rpm" in limit else 22
    ChatClient(endpoint(server, concurrency=16, **limit), journal).run(make_requests(n, max_tokens=100))
    arrivals = server.stats()["arrivals"]
    assert len(arrivals) == n
    assert arrivals[-1] - arrivals[0] >= minimum_s


# -- Batch API ---------------------------------------------------------------------------------------------


def test_batch_round_trip_resumes_from_the_journal(
    server: ServerHandle, journal: Journal, tmp_path: Path
) -> None:
    requests = make_requests(12, tag="batch")
    server.configure(batch_polls=2, batch_fail_ids=[requests[2].key, requests[5].key])
    config = endpoint(server, price_in_per_mtok=2.0, price_out_per_mtok=4.0)

    batch_id = submit_batch(config, requests, journal, tmp_path / "batches")
    assert BatchStore(journal).get(batch_id) is not None  # persisted before returning
    first = poll_batch(config, journal, batch_id)
    assert (first.status, first.done, first.ingested) == ("in_progress", False, 0)

    # a re-run finds the persisted batch: no second upload, then the poll ingests its output
    assert submit_batch(config, requests, journal, tmp_path / "batches") == batch_id
    done = poll_batch(config, journal, batch_id)
    assert (done.status, done.ingested, done.errors) == ("completed", 10, 2)
    assert journal.count() == 10
    assert poll_batch(config, journal, batch_id).ingested == 0  # ingested once

    # the next run submits only the two lines that failed
    retry_id = submit_batch(config, requests, journal, tmp_path / "batches")
    assert retry_id != batch_id
    poll_batch(config, journal, retry_id)
    assert poll_batch(config, journal, retry_id).ingested == 2
    assert journal.count() == 12
    assert submit_batch(config, requests, journal, tmp_path / "batches") == retry_id  # nothing left to send

    stats = server.stats()
    assert stats["answered"] == 0  # no synchronous chat call
    assert stats["batches_created"] == 2
    assert stats["batch_lines_answered"] == 12
    meta = journal.meta(requests[0].key)
    assert meta is not None and meta["batch_id"] == batch_id and meta["cost_usd"] > 0
    answers = ChatClient(config, journal).run(requests)
    assert len(answers) == 12 and server.stats()["chat_requests"] == 0
