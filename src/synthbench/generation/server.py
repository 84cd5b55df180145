"""The embedded default endpoint: llama-cpp-python's OpenAI-compatible server on a free 127.0.0.1 port,
serving SmolLM2-135M-Instruct from its PyPI wheel. Started, waited for, and stopped by PID — also on error,
Ctrl-C or SIGTERM — so no server outlives the stage."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from synthbench.errors import EndpointError
from synthbench.sweep import threads_per_worker


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_s)


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """DVC or a scheduler may SIGTERM us; turn it into SystemExit so ``finally`` blocks stop the server."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def embedded_server(
    model_path: str | Path,
    *,
    alias: str,
    n_ctx: int = 2048,
    startup_timeout_s: float = 120.0,
    n_threads: int | None = None,
) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` for the block; yields its base URL (``http://127.0.0.1:P/v1``)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="synthbench-llama-", suffix=".log", delete=False)  # noqa: SIM115
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads or threads_per_worker()),  # a share of the cores under -j N
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with _sigterm_as_exit():
        # Own session: Ctrl-C reaches us, not the server; we stop it ourselves in ``finally``.
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + startup_timeout_s
            while not _answers(f"{base_url}/models"):
                if process.poll() is not None:
                    tail = Path(log.name).read_text(errors="replace").strip().splitlines()[-1:] or [
                        "no output"
                    ]
                    raise EndpointError(
                        f"embedded llama.cpp server exited with code {process.returncode} ({tail[0][:200]}); "
                        f"log: {log.name}"
                    )
                if time.monotonic() > deadline:
                    raise EndpointError(
                        f"embedded llama.cpp server did not answer within {startup_timeout_s:.0f} s; raise "
                        f"generate.endpoint.startup_timeout_s (log: {log.name})"
                    )
                time.sleep(0.25)
            yield base_url
            failed = False
        except BaseException:
            failed = True
            raise
        finally:
            _stop(process)
            log.close()
            if not failed:  # keep the server's log when something went wrong: the error message names it
                with contextlib.suppress(OSError):
                    os.unlink(log.name)
