"""The embedded default endpoint: an OpenAI-compatible server on a free 127.0.0.1 port serving
SmolLM2-135M-Instruct from its PyPI wheel — llama-cpp-python's (``engine: llama-cpp-python``) or llama.cpp's own
``llama-server`` (``engine: llama-server``: parallel slots, continuous batching, a slot's prompt prefix reused;
built by :mod:`synthbench.generation.llama_build`). Started, waited for, and stopped by PID — also on error,
Ctrl-C or SIGTERM — so no server outlives the stage.

Threads: ``n_threads`` for prompt and generation (default :func:`synthbench.threads.thread_budget`: never more
than the cores this process may use), and llama-server waits for work without polling (``--poll 0``), so a
shared machine is not burned by spinning threads.

Tied to the stage's lifetime twice over, since ``finally`` never runs after a ``kill -9``: the kernel sends it
SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux), and a watchdog thread inside it reads a pipe
whose only write end the parent holds: end of file (the parent is gone, however it died) kills its process
group (any OS with pipes)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
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
from synthbench.threads import thread_budget


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


PR_SET_PDEATHSIG = 1  # linux/prctl.h
try:  # resolved here, in the parent: the child between fork and exec should only call it
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the watchdog pipe alone ties the server to us
    _PRCTL = None

# Watch the pipe from the parent: when it closes (the parent died, however), kill the whole process group.
_WATCH = """
def watch():
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    os.killpg(os.getpgid(0), signal.SIGKILL)
threading.Thread(target=watch, daemon=True).start()
"""

# Run in the server's interpreter before llama_cpp.server: watch the pipe, die with the parent.
_WATCHDOG = (
    """
import os, runpy, signal, sys, threading
fd = int(sys.argv.pop(1))
"""
    + _WATCH
    + """sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""
)

# The same watchdog around a binary (llama-server): it runs the binary as its child, in its process group, and
# exits with its code; SIGTERM/SIGINT reach both through the group (the binary handles them itself).
_WATCHDOG_EXEC = (
    """
import ctypes, os, signal, subprocess, sys, threading
fd = int(sys.argv[1])
"""
    + _WATCH
    + """for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda *_: None)  # the group's signal reaches the binary too; wait for it to end
prctl = ctypes.CDLL(None, use_errno=True).prctl
me = os.getpid()
def tie():
    prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with this wrapper
    if os.getppid() != me:
        os._exit(1)
child = subprocess.Popen(sys.argv[2:], preexec_fn=tie, close_fds=True)
while True:
    try:
        sys.exit(child.wait())
    except InterruptedError:
        continue
"""
)

ENGINES = ("llama-cpp-python", "llama-server")
CACHE_REUSE_TOKENS = 64  # llama-server: shortest chunk of a slot's cached prompt reused by KV shifting


def llama_server_args(
    binary: str | Path,
    model_path: str | Path,
    *,
    alias: str,
    port: int,
    n_ctx: int,
    threads: int,
    parallel: int,
    prefix_reuse: bool,
) -> list[str]:
    """llama-server's command line: ``parallel`` slots of ``n_ctx`` tokens each (continuous batching), ``threads``
    for prompt and generation, no polling for work (``--poll 0``: idle threads sleep instead of spinning), and
    each slot's prompt cache kept for the next request sharing its prefix (or none without ``prefix_reuse``)."""
    args = [
        str(binary),
        "--model",
        str(model_path),
        "--alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        str(n_ctx * parallel),  # shared by the slots: each gets n_ctx
        "--parallel",
        str(parallel),
        "--cont-batching",
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--poll",
        "0",
        "--no-webui",
    ]
    if prefix_reuse:
        args += ["--cache-prompt", "--cache-reuse", str(CACHE_REUSE_TOKENS)]
    else:
        args += ["--no-cache-prompt", "--cache-ram", "0"]
    return args


def die_with_parent(signum: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux; elsewhere a no-op). As a
    ``preexec_fn`` (run in the child between fork and exec) pass ``parent``, the forking pid: a child whose
    parent died before the prctl took effect exits at once."""
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


@contextlib.contextmanager
def embedded_server(
    model_path: str | Path,
    *,
    alias: str,
    n_ctx: int = 2048,
    startup_timeout_s: float = 120.0,
    n_threads: int | None = None,
    engine: str = "llama-cpp-python",
    binary: str | Path | None = None,
    parallel: int = 1,
    prefix_reuse: bool = True,
) -> Iterator[str]:
    """Run the embedded server for the block; yields its base URL (``http://127.0.0.1:P/v1``).

    ``engine``: ``llama-cpp-python`` (``python -m llama_cpp.server``, one request at a time) or ``llama-server``
    (``binary``, with ``parallel`` slots of ``n_ctx`` tokens each and, with ``prefix_reuse``, each slot's
    prompt cache reused by the next request that shares its prefix)."""
    if engine not in ENGINES:
        raise EndpointError(f"unknown embedded engine {engine!r}; use one of {', '.join(ENGINES)}")
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="synthbench-llama-", suffix=".log", delete=False)  # noqa: SIM115
    watch_read, watch_write = os.pipe()  # the child inherits the read end only (pass_fds)
    threads = thread_budget(n_threads)
    if engine == "llama-server":
        if binary is None:
            raise EndpointError(
                "engine llama-server needs the llama-server binary (llama_build.ensure_built())"
            )
        cmd = [
            sys.executable,
            "-c",
            _WATCHDOG_EXEC,
            str(watch_read),
            *llama_server_args(
                binary,
                model_path,
                alias=alias,
                port=port,
                n_ctx=n_ctx,
                threads=threads,
                parallel=parallel,
                prefix_reuse=prefix_reuse,
            ),
        ]
    else:
        cmd = [
            sys.executable,
            "-c",
            _WATCHDOG,
            str(watch_read),
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
            str(threads),
            "--n_threads_batch",
            str(threads),
        ]
    base_url = f"http://127.0.0.1:{port}/v1"
    # Own session: Ctrl-C reaches us, not the server; we stop it ourselves in ``finally``.
    process = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=(watch_read,),
        preexec_fn=functools.partial(die_with_parent, signal.SIGKILL, os.getpid()),
    )
    os.close(watch_read)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not _answers(f"{base_url}/models"):
            if process.poll() is not None:
                lines = Path(log.name).read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise EndpointError(
                    f"embedded {engine} server exited with code {process.returncode} ({lines[0][:200]}); "
                    f"log: {log.name}"
                )
            if time.monotonic() > deadline:
                raise EndpointError(
                    f"embedded {engine} server did not answer within {startup_timeout_s:.0f} s; raise "
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
        os.close(watch_write)
        log.close()
        if not failed:  # keep the server's log when something went wrong: the error message names it
            with contextlib.suppress(OSError):
                os.unlink(log.name)
