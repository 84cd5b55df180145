"""The Batch API runner (generate.endpoint.mode: batch) against the fake OpenAI server: split into jobs of at
most the per-file limit, resumed by key set, failed lines resubmitted, pending as one line, half price."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthbench.config import EndpointParams
from synthbench.errors import BatchPending
from synthbench.generation.batch_runner import BatchRunner
from synthbench.generation.client import ChatRequest
from synthbench.generation.endpoint import EndpointConfig
from synthbench.generation.journal import Journal
from synthbench.testing.openai_server import ServerHandle, serve


@pytest.fixture
def server() -> ServerHandle:
    with serve() as handle:  # a fresh one per test: its files and batches start empty
        yield handle


def requests(n: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            key=f"key-{i:03d}",
            messages=[{"role": "user", "content": f"write text {i}"}],
            params={"max_tokens": 10, "seed": i},
            meta={"task": "t", "mode": "zero_shot", "label": "a", "index": i},
        )
        for i in range(n)
    ]


def runner(server: ServerHandle, journal: Journal, tmp_path: Path, **kw: object) -> BatchRunner:
    config = EndpointConfig(
        base_url=server.base_url, model="m", api_key_env=None, price_in_per_mtok=2.0, price_out_per_mtok=4.0
    )
    kw.setdefault("sleep", lambda s: None)
    return BatchRunner(config, journal, tmp_path / "batches", poll_s=0.01, **kw)  # type: ignore[arg-type]


def test_requests_are_split_into_jobs_of_at_most_the_chunk_size_and_resumed(
    server: ServerHandle, tmp_path: Path
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        first = runner(server, journal, tmp_path, chunk_size=4)
        answers = first.run(requests(10))
        assert len(answers) == 10
        assert server.stats()["batches_created"] == 3  # 4 + 4 + 2 lines
        assert first.stats.batches_submitted == 3 and first.stats.fresh == 10
        # cost at half the synchronous price
        full = sum(a.prompt_tokens * 2.0 + a.completion_tokens * 4.0 for a in answers.values()) / 1e6
        assert first.stats.cost_usd == pytest.approx(full / 2)
        again = runner(server, journal, tmp_path, chunk_size=4)
        assert again.run(requests(10)) == answers
        assert server.stats()["batches_created"] == 3 and again.stats.cached == 10 and again.stats.fresh == 0


def test_pending_without_wait_is_one_line_and_the_rerun_resumes_the_same_batch(
    server: ServerHandle, tmp_path: Path
) -> None:
    server.configure(batch_polls=3)
    with Journal(tmp_path / "j.sqlite") as journal:
        with pytest.raises(
            BatchPending, match=r"^batch batch_000001 pending: 0/5 done; re-run `dvc repro` later$"
        ):
            runner(server, journal, tmp_path, wait=False).run(requests(5))
        lines: list[str] = []
        resumed = runner(server, journal, tmp_path, say=lines.append)
        assert len(resumed.run(requests(5))) == 5
    stats = server.stats()
    assert stats["batches_created"] == 1 and stats["files"] == 2  # one upload, one output
    assert resumed.stats.batches_submitted == 0 and resumed.stats.batch_ids == ["batch_000001"]
    assert any("resuming" in line for line in lines)
    assert any(
        line.startswith("batch batch_000001 pending: 0/5 done (in_progress); next poll in") for line in lines
    )


def test_polls_back_off(server: ServerHandle, tmp_path: Path) -> None:
    server.configure(batch_polls=5)
    pauses: list[float] = []
    with Journal(tmp_path / "j.sqlite") as journal:
        runner(server, journal, tmp_path, sleep=pauses.append).run(requests(2))
    assert pauses == pytest.approx([0.01, 0.015, 0.0225, 0.03375])


def test_failed_lines_are_resubmitted_once_more(server: ServerHandle, tmp_path: Path) -> None:
    reqs = requests(4)
    server.configure(batch_fail_ids=[reqs[1].key])
    with Journal(tmp_path / "j.sqlite") as journal:
        answers = runner(server, journal, tmp_path).run(reqs)
    assert len(answers) == 4 and server.stats()["batches_created"] == 2
    assert server.stats()["batch_lines_answered"] == 4


def test_batch_mode_needs_an_openai_endpoint() -> None:
    with pytest.raises(ValueError, match="mode: batch needs kind: openai"):
        EndpointParams(kind="embedded", mode="batch")
    assert EndpointParams(kind="openai", mode="batch").batch_wait is True
