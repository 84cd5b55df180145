"""The embedded default endpoint: an OpenAI-compatible server on a free 127.0.0.1 port serving
SmolLM2-135M-Instruct from its PyPI wheel — llama-cpp-python's (``engine: llama-cpp-python``) or llama.cpp's own
``llama-server`` (``engine: llama-server``: parallel slots, continuous batching, a slot's prompt prefix reused;
built by :mod:`synthbench.generation.llama_build`). Started, waited for, and stopped by PID — also on error,
Ctrl-C or SIGTERM — so no server outlives the stage.

Threads: ``n_threads`` for prompt and generation (default :func:`synthbench.threads.thread_budget`: never more
than the cores this process may use, less one per core another process keeps busy, re-measured twice a second and
fitted by restarting the server on the same port), and llama-server waits for work without polling
(``--poll 0``), so a shared machine is not burned by spinning threads. Why restart rather than share: llama.cpp's
threads meet at a barrier per layer, so one thread on a core that another process also wants stalls them all
(20-130x slower per request on 2 cores, benchmarks/RESULTS.md).

Tied to the stage's lifetime twice over, since ``finally`` never runs after a ``kill -9``: the kernel sends it
SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux), and a watchdog thread inside it reads a pipe
whose only write end the parent holds: end of file (the parent is gone, however it died) kills its process
group (any OS with pipes)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from synthbench.errors import EndpointError
from synthbench.generation.engine_process import EngineProcess, registered, watch_load
from synthbench.threads import ForeignLoad, budget_is_fixed, thread_budget, threads_beside


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
# llama-server's host-memory prompt cache (MiB; its default, 8192, grew the engine to ~3.3 GB in a study). Its
# slots' own prefix reuse is what speeds a study up: 0, 256 and the default ran a 60-request stage alike.
# LLAMA_ARG_CACHE_RAM, llama.cpp's own variable, overrides it.
PROMPT_CACHE_MIB = 256
WATCH_LOAD_S = 0.5  # how often the engine's threads are fitted to the other processes' load
START_SAMPLE_S = 0.3  # the load measured before the first start


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
        if "LLAMA_ARG_CACHE_RAM" not in os.environ:
            args += ["--cache-ram", str(PROMPT_CACHE_MIB)]
    else:
        args += ["--no-cache-prompt", "--cache-ram", "0"]
    return args


def _engine_command(
    engine: str,
    watch_read: int,
    model_path: str | Path,
    binary: str | Path | None,
    *,
    alias: str,
    port: int,
    n_ctx: int,
    threads: int,
    parallel: int,
    prefix_reuse: bool,
) -> list[str]:
    """The command that runs ``engine`` under its watchdog (which reads ``watch_read``)."""
    if engine == "llama-server":
        server = llama_server_args(
            binary or "llama-server",
            model_path,
            alias=alias,
            port=port,
            n_ctx=n_ctx,
            threads=threads,
            parallel=parallel,
            prefix_reuse=prefix_reuse,
        )
        return [sys.executable, "-c", _WATCHDOG_EXEC, str(watch_read), *server]
    return [
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
    watch_load_s: float | None = WATCH_LOAD_S,
) -> Iterator[str]:
    """Run the embedded server for the block; yields its base URL (``http://127.0.0.1:P/v1``).

    ``engine``: ``llama-cpp-python`` (``python -m llama_cpp.server``, one request at a time) or ``llama-server``
    (``binary``, with ``parallel`` slots of ``n_ctx`` tokens each and, with ``prefix_reuse``, each slot's
    prompt cache reused by the next request that shares its prefix).

    Threads: ``n_threads`` (or ``$SYNTHBENCH_THREADS``) as given; otherwise the budget of
    :func:`synthbench.threads.thread_budget` less one per core that other processes keep busy, measured before
    the start and every ``watch_load_s`` seconds after it (None: not watched), restarting the server on the same
    port when that count changes."""
    if engine not in ENGINES:
        raise EndpointError(f"unknown embedded engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "llama-server" and binary is None:
        raise EndpointError("engine llama-server needs the llama-server binary (llama_build.ensure_built())")
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="synthbench-llama-", suffix=".log", delete=False)  # noqa: SIM115
    log.close()
    watch_read, watch_write = os.pipe()  # children inherit the read end only (pass_fds)
    budget = thread_budget(n_threads)
    watched = watch_load_s is not None and budget > 1 and not budget_is_fixed(n_threads)

    def command(threads: int) -> list[str]:
        return _engine_command(
            engine,
            watch_read,
            model_path,
            binary,
            alias=alias,
            port=port,
            n_ctx=n_ctx,
            threads=threads,
            parallel=parallel,
            prefix_reuse=prefix_reuse,
        )

    server = EngineProcess(
        engine, command, f"http://127.0.0.1:{port}/v1", watch_read, log.name, startup_timeout_s
    )
    stop = threading.Event()
    watcher = None
    try:
        threads = budget
        if watched:
            load = ForeignLoad()
            time.sleep(START_SAMPLE_S)
            threads = threads_beside(load.sample() or 0.0, budget)
        server.start(threads)
        if watched:
            load.sample()
            watcher = threading.Thread(
                target=watch_load, args=(server, budget, load, watch_load_s, stop), daemon=True
            )
            watcher.start()
        with registered(server):  # the client tells a restart's failures from a request's
            yield server.base_url
        failed = False
    except BaseException:
        failed = True
        raise
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        server.stop()
        os.close(watch_read)
        os.close(watch_write)
        if not failed:  # keep the server's log when something went wrong: the error message names it
            with contextlib.suppress(OSError):
                os.unlink(log.name)
