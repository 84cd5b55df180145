"""llama.cpp's own llama-server as the embedded engine: built from the pinned sdist (one line when the toolchain
is missing), parallel slots answering concurrent requests with nothing lost or duplicated, stopped on success,
error, SIGINT and SIGTERM, and never outliving a SIGKILLed parent."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from synthbench.assets import PINNED_SDISTS, embedded_gguf_path
from synthbench.errors import EndpointError
from synthbench.generation import llama_build
from synthbench.generation.client import ChatClient, ChatRequest
from synthbench.generation.endpoint import EndpointConfig
from synthbench.generation.engine_process import running_engine
from synthbench.generation.journal import Journal
from synthbench.generation.server import embedded_server, llama_server_args

BINARY = llama_build.built_binary("llama-server")
needs_binary = pytest.mark.skipif(
    BINARY is None,
    reason="llama-server is not built on this machine (python -m synthbench.generation.llama_build, ~10+ min "
    "on 2 cores)",
)


def port_open(base_url: str) -> bool:
    import socket

    host, port = base_url.removeprefix("http://").split("/")[0].split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def engine_processes() -> list[psutil.Process]:
    """Every llama-server process of the pinned build still running."""
    found = []
    for proc in psutil.process_iter(["exe", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        where = str(llama_build.engine_dir())
        if where in cmd or (proc.info.get("exe") or "").startswith(where):
            found.append(proc)
    return found


def test_the_command_line_sets_slots_threads_no_polling_and_prefix_reuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLAMA_ARG_CACHE_RAM", raising=False)
    args = llama_server_args(
        "/b/llama-server", "/m.gguf", alias="a", port=5, n_ctx=1024, threads=2, parallel=4, prefix_reuse=True
    )

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert args[0] == "/b/llama-server"
    assert [value(f) for f in ("--parallel", "--ctx-size", "--threads", "--threads-batch", "--poll")] == [
        "4",
        "4096",
        "2",
        "2",
        "0",
    ]
    assert "--cache-reuse" in args and "--no-cache-prompt" not in args
    assert value("--cache-ram") == "256"  # the host-memory prompt cache bounded (llama.cpp's default: 8 GiB)
    off = llama_server_args(
        "/b", "/m", alias="a", port=5, n_ctx=1024, threads=1, parallel=1, prefix_reuse=False
    )
    assert "--no-cache-prompt" in off and "--cache-reuse" not in off
    monkeypatch.setenv("LLAMA_ARG_CACHE_RAM", "1024")  # llama.cpp's own variable wins: no flag to override it
    mine = llama_server_args(
        "/b", "/m", alias="a", port=5, n_ctx=1024, threads=1, parallel=1, prefix_reuse=True
    )
    assert "--cache-ram" not in mine


def test_a_missing_toolchain_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHBENCH_CACHE", str(tmp_path / "cache"))  # nothing built there
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv-bin" / "python"))  # no venv cmake either
    with pytest.raises(
        EndpointError, match=r"^building llama-server needs cmake, c\+\+, cc on PATH; install"
    ):
        llama_build.ensure_built()


def test_the_venvs_own_cmake_and_ninja_are_found_off_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """synthbench's requirements install cmake and ninja into its venv; `.venv/bin/python -m …` (CI, dvc run
    without the venv on PATH) must still build with them."""
    scripts = tmp_path / "venv-bin"
    scripts.mkdir()
    for tool in ("cmake", "ninja"):
        (scripts / tool).write_text("#!/bin/sh\n")
        (scripts / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(sys, "executable", str(scripts / "python"))
    assert shutil.which("cmake", path=llama_build._tool_path()) == str(scripts / "cmake")
    assert llama_build._generator() == "Ninja"


def test_the_sdist_is_pinned_to_the_installed_llama_cpp_python() -> None:
    from importlib.metadata import version

    assert PINNED_SDISTS["llama-cpp-python"].version == version("llama-cpp-python")


@needs_binary
@pytest.mark.slow
def film_reviews(n: int, max_tokens: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            f"key-{i}",
            [
                {"role": "system", "content": "You write reviews."},
                {"role": "user", "content": f"Write a review of film number {i}."},
            ],
            {"max_tokens": max_tokens, "seed": i, "temperature": 0.8},
            {"index": i},
        )
        for i in range(n)
    ]


def unwatched_server(parallel: int) -> contextlib.AbstractContextManager[str]:
    """llama-server with ``parallel`` slots and no load watch: no restart but a test's own."""
    return embedded_server(
        embedded_gguf_path(),
        alias="m",
        n_ctx=512,
        engine="llama-server",
        binary=BINARY,
        parallel=parallel,
        watch_load_s=None,
    )


def test_parallel_slots_answer_concurrent_requests_each_once(tmp_path: Path) -> None:
    n = 8
    requests = film_reviews(n, max_tokens=12)
    with unwatched_server(4) as base_url, Journal(tmp_path / "j.sqlite") as journal:
        client = ChatClient(
            EndpointConfig(base_url=base_url, model="m", api_key_env=None, concurrency=4), journal
        )
        answers = client.run(requests)
        assert journal.count() == n and set(answers) == {r.key for r in requests}
        assert client.stats.fresh == n and client.stats.calls_made == n and not client.stats.retries
        assert all(a.completion_tokens > 0 for a in answers.values())
        again = ChatClient(
            EndpointConfig(base_url=base_url, model="m", api_key_env=None, concurrency=4), journal
        )
        assert again.run(requests) == answers and again.stats.calls_made == 0
    assert not port_open(base_url)
    assert engine_processes() == []


@needs_binary
@pytest.mark.slow
def test_requests_cut_by_an_engine_restart_are_sent_again_without_using_up_retries(tmp_path: Path) -> None:
    n = 8
    requests = film_reviews(n, max_tokens=64)
    with unwatched_server(4) as base_url, Journal(tmp_path / "j.sqlite") as journal:
        engine = running_engine(base_url)
        assert engine is not None and running_engine("http://127.0.0.1:9/v1") is None
        restarter = threading.Thread(target=lambda: engine.start(engine.threads))

        def restart_once(request: ChatRequest, answer: object, cached: bool) -> None:
            if restarter.ident is None:
                restarter.start()  # at the first answer: the next requests are in flight

        # No retry allowed: a failure the restart caused must not count as one.
        config = EndpointConfig(base_url=base_url, model="m", api_key_env=None, concurrency=4, max_retries=0)
        client = ChatClient(config, journal)
        answers = client.run(requests, on_result=restart_once)
        restarter.join()
        assert engine.restarts == 1
        assert journal.count() == n and set(answers) == {r.key for r in requests}
        assert set(client.stats.retries) == {"engine_restart"} and client.stats.retries["engine_restart"] >= 1
        assert client.stats.calls_made == n + client.stats.retries["engine_restart"]
    assert running_engine(base_url) is None
    assert engine_processes() == []


@needs_binary
@pytest.mark.slow
def test_stops_when_the_block_raises() -> None:
    with (
        pytest.raises(RuntimeError),
        embedded_server(
            embedded_gguf_path(), alias="m", n_ctx=512, engine="llama-server", binary=BINARY, parallel=2
        ) as base_url,
    ):
        assert port_open(base_url)
        raise RuntimeError("stage failed")
    assert not port_open(base_url)
    assert engine_processes() == []


_CHILD = """
import sys, time, psutil
from synthbench.assets import embedded_gguf_path
from synthbench.generation.server import embedded_server
with embedded_server(embedded_gguf_path(), alias="m", n_ctx=512, engine="llama-server", binary=sys.argv[1],
                     parallel=2) as base_url:
    procs = psutil.Process().children(recursive=True)
    print(base_url, " ".join(str(p.pid) for p in procs), flush=True)
    time.sleep(600)
"""


@needs_binary
@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigkill", "sigterm", "sigint"])
def test_no_engine_process_outlives_its_parent(how: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(BINARY)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert parent.stdout is not None
        base_url, *pids = parent.stdout.readline().split()
        engine = [psutil.Process(int(pid)) for pid in pids]
        assert any("llama-server" in " ".join(p.cmdline()) for p in engine)
        parent.send_signal(
            {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}[how]
        )
        parent.wait(30)
        _gone, alive = psutil.wait_procs(engine, timeout=20)
        assert not alive, f"engine processes outlived their parent: {alive}"
        assert not port_open(base_url)
        assert engine_processes() == []
    finally:
        parent.kill()


def test_a_failed_build_step_is_one_line_with_the_first_error_and_progress_is_reported() -> None:
    said: list[str] = []
    script = 'echo "[1/3] Building a"; echo "[2/3] Building b"; echo "x.cpp:1: error: boom"; exit 2'
    with pytest.raises(
        EndpointError, match=r"^llama-server build failed \(exit 2: x\.cpp:1: error: boom\); full log"
    ):
        llama_build._run(["sh", "-c", script], "build", said.append, every_s=0.0)
    assert said == ["compiling llama-server: step 1/3", "compiling llama-server: step 2/3"]


@needs_binary
@pytest.mark.slow
def test_the_generate_stage_on_llama_server_journals_each_request_once(cli, tmp_path: Path) -> None:
    import json

    import yaml
    from tests.conftest import REPO_ROOT
    from tests.test_cli_errors import project

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["generate"]
    params["endpoint"].update(kind="embedded", engine="llama-server", parallel=4, n_ctx=512)
    params.update(per_label=4, max_attempts_factor=2, allow_short=True, min_words=2)
    root = project(tmp_path, generate=params)
    assert cli("prepare", "--task", "toy", cwd=root).returncode == 0
    done = cli("generate", "--task", "toy", "--mode", "zero_shot", cwd=root)
    assert done.returncode == 0, done.stderr
    summary = json.loads((root / "data/synthetic/toy/zero_shot.summary.json").read_text())
    assert summary["endpoint"] == "embedded llama-server (127.0.0.1, 4 slots)"
    asked = sum(summary["attempts_per_label"].values())
    client = summary["client"]
    assert client["fresh"] == client["calls_made"] == asked and client["requested"] == asked
    with Journal(root / ".synthbench/journal.sqlite") as journal:
        assert journal.count() == asked  # N requests, N distinct entries, none lost or repeated
    assert engine_processes() == []


def _engine_threads() -> int | None:
    """The ``--threads`` of the running llama-server (None when none runs)."""
    for proc in engine_processes():
        with contextlib.suppress(psutil.Error):
            cmd = proc.cmdline()
            if "--threads" in cmd and cmd[0].endswith("llama-server"):
                return int(cmd[cmd.index("--threads") + 1])
    return None


def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


_ORPHAN_BURNER = """
import subprocess, sys
burner = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(burner.pid, flush=True)
"""


@needs_binary
@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to give one up")
def test_the_engine_gives_a_busy_core_up_and_takes_it_back(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    request = ChatRequest(
        "k", [{"role": "user", "content": "Say hello."}], {"max_tokens": 8, "seed": 1, "temperature": 0.0}, {}
    )
    with (
        embedded_server(
            embedded_gguf_path(),
            alias="m",
            n_ctx=512,
            engine="llama-server",
            binary=BINARY,
            parallel=2,
            watch_load_s=0.5,
            n_threads=None,
        ) as base_url,
        Journal(tmp_path / "j.sqlite") as journal,
    ):
        assert _engine_threads() == cores
        # Someone else's busy process (not our child: its parent has exited).
        out = subprocess.run(
            [sys.executable, "-c", _ORPHAN_BURNER], capture_output=True, text=True, check=True
        )
        burner = int(out.stdout)
        try:
            assert _wait_for(lambda: _engine_threads() == cores - 1, 20), _engine_threads()
            client = ChatClient(EndpointConfig(base_url=base_url, model="m", api_key_env=None), journal)
            assert client.run([request])["k"].completion_tokens > 0  # the restarted server answers
        finally:
            os.kill(burner, signal.SIGKILL)
        assert _wait_for(lambda: _engine_threads() == cores, 20), _engine_threads()
    assert not port_open(base_url)
    assert engine_processes() == []


_CHILD_RESTARTED = """
import subprocess, sys, time, psutil
from synthbench.assets import embedded_gguf_path
from synthbench.generation.server import embedded_server
with embedded_server(embedded_gguf_path(), alias="m", n_ctx=512, engine="llama-server", binary=sys.argv[1],
                     parallel=2, watch_load_s=0.3) as base_url:
    first = {p.pid for p in psutil.Process().children(recursive=True)}
    print("started", flush=True)
    while {p.pid for p in psutil.Process().children(recursive=True)} & first:  # until restarted
        time.sleep(0.1)
    time.sleep(1)
    procs = psutil.Process().children(recursive=True)
    print(base_url, " ".join(str(p.pid) for p in procs), flush=True)
    time.sleep(600)
"""


@needs_binary
@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to give one up")
def test_an_engine_restarted_by_the_load_watch_dies_with_a_sigkilled_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _CHILD_RESTARTED, str(BINARY)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    burner = None
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "started"
        out = subprocess.run(
            [sys.executable, "-c", _ORPHAN_BURNER], capture_output=True, text=True, check=True
        )
        burner = int(out.stdout)
        base_url, *pids = (
            parent.stdout.readline().split()
        )  # the restarted engine, started off the main thread
        engine = [psutil.Process(int(pid)) for pid in pids]
        assert any("--threads 1" in " ".join(p.cmdline()) for p in engine)
        parent.kill()
        parent.wait(30)
        _gone, alive = psutil.wait_procs(engine, timeout=20)
        assert not alive, f"engine processes outlived their parent: {alive}"
        assert not port_open(base_url)
    finally:
        parent.kill()
        if burner is not None:
            os.kill(burner, signal.SIGKILL)
