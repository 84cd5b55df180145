"""An embedded engine's server process: started under its watchdog, waited for until it answers, stopped by
process group (SIGTERM, then SIGKILL), and restarted on the same port with another thread count when the load
around it changes (:func:`watch_load`)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from synthbench.errors import EndpointError
from synthbench.threads import ForeignLoad, threads_beside


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
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


RESTART_GRACE_S = 0.5  # a replaced engine's time to exit on SIGTERM before SIGKILL
# Load samples in a row (at WATCH_LOAD_S = 0.5 s: 5 s) before the engine gives a core up, and before it takes one
# back. A restart drops every request in flight (8 slots' work) and costs ~1 s: more than a shorter burst does.
FEWER_AFTER = 10
MORE_AFTER = 10

PR_SET_PDEATHSIG = 1  # linux/prctl.h
try:  # resolved here, in the parent: the child between fork and exec should only call it
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the watchdog pipe alone ties the server to us
    _PRCTL = None


def die_with_parent(signum: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux; elsewhere a no-op). As a
    ``preexec_fn`` (run in the child between fork and exec) pass ``parent``, the forking pid: a child whose
    parent died before the prctl took effect exits at once."""
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


class EngineProcess:
    """The running server process, started (and, when the load around it changes, restarted on the same port
    with another thread count) by one lock holder at a time."""

    def __init__(
        self,
        engine: str,
        command: Callable[[int], list[str]],
        base_url: str,
        watch_read: int,
        log_path: str,
        startup_timeout_s: float,
    ) -> None:
        self.engine = engine
        self.command = command
        self.base_url = base_url
        self.watch_read = watch_read
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.threads = 0
        self.restarts = 0  # completed restarts; a request sent before one ends may fail because of it
        self.lock = threading.Lock()

    def start(self, threads: int) -> None:
        with self.lock:
            replacing = self.process is not None
            if replacing:  # replaced: nothing to finish (answers are journaled client-side)
                stop_process(self.process, grace_s=RESTART_GRACE_S)
                self._wait_port_free()
            self.threads = threads
            with open(self.log_path, "ab") as log:
                # Own session: Ctrl-C reaches us, not the server; we stop it ourselves in ``finally``.
                self.process = subprocess.Popen(
                    self.command(threads),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(self.watch_read,),
                    # The kernel's parent-death signal follows the forking *thread*: from the load watch's
                    # thread it would kill the engine when that thread ends. There the watchdog pipe alone
                    # ties the engine to this process (its end of file comes however the process dies).
                    preexec_fn=functools.partial(die_with_parent, signal.SIGKILL, os.getpid())
                    if threading.current_thread() is threading.main_thread()
                    else None,
                )
            self._wait_ready(self.process)
            self.restarts += replacing

    def _wait_port_free(self, timeout_s: float = 10.0) -> None:
        """Until nothing listens on the engine's port: a killed engine (a grandchild, under its watchdog) may still
        hold it for a moment after its watchdog is reaped, and the new one would fail to bind it."""
        port = urllib.parse.urlsplit(self.base_url).port
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the engine binds it
                try:
                    probe.bind(("127.0.0.1", port))
                    return
                except OSError:
                    time.sleep(0.02)

    def settled_restarts(self) -> int:
        """The completed restarts, once none is under way (blocks while one is): a client whose request failed
        compares it with :attr:`restarts` as it was at sending to tell a restart's failure from the request's."""
        with self.lock:
            return self.restarts

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while not answers(f"{self.base_url}/models"):
            if process.poll() is not None:
                lines = Path(self.log_path).read_text(errors="replace").strip().splitlines()[-1:]
                raise EndpointError(
                    f"embedded {self.engine} server exited with code {process.returncode} "
                    f"({(lines or ['no output'])[0][:200]}); log: {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise EndpointError(
                    f"embedded {self.engine} server did not answer within {self.startup_timeout_s:.0f} s; "
                    f"raise generate.endpoint.startup_timeout_s (log: {self.log_path})"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        with self.lock:
            if self.process is not None:
                stop_process(self.process)


_RUNNING: dict[str, EngineProcess] = {}  # base URL → the embedded engine this process runs there


def running_engine(base_url: str) -> EngineProcess | None:
    """The embedded engine this process runs at ``base_url``; None for any other endpoint."""
    return _RUNNING.get(base_url.rstrip("/"))


@contextlib.contextmanager
def registered(server: EngineProcess) -> Iterator[None]:
    """Make ``server`` known to this process's clients (:func:`running_engine`) for the block."""
    _RUNNING[server.base_url.rstrip("/")] = server
    try:
        yield
    finally:
        _RUNNING.pop(server.base_url.rstrip("/"), None)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def watch_load(
    server: EngineProcess, budget: int, load: ForeignLoad, interval_s: float, stop: threading.Event
) -> None:
    """Every ``interval_s``, fit the engine's threads to the cores other processes leave it: samples in a row
    that call for another count (``FEWER_AFTER`` to give a core up, ``MORE_AFTER`` to take one back, so a
    passing job does not make it flap) restart it with that count. A llama.cpp thread that shares its core with
    a busy process stalls every layer's barrier (20-130x slower per request, measured); one thread fewer costs
    ~1.6-1.9x. Requests in flight during the restart fail; the client sends them again once the new engine
    answers, without counting an attempt (:meth:`EngineProcess.settled_restarts`)."""
    pending, streak = 0, 0
    while not stop.wait(interval_s):
        foreign = load.sample()
        if foreign is None:
            return
        want = threads_beside(foreign, budget)
        if want == server.threads:
            pending, streak = 0, 0
            continue
        streak = streak + 1 if want == pending else 1
        pending = want
        if streak < (FEWER_AFTER if want < server.threads else MORE_AFTER) or stop.is_set():
            continue
        _say(
            f"embedded {server.engine}: other processes keep {foreign:.1f} of its {budget} cores busy; "
            f"restarting it with {want} thread(s)"
        )
        try:
            server.start(want)
        except EndpointError as exc:
            _say(f"embedded {server.engine}: restart failed: {exc}")
            return
        load.sample()  # the restart's own start-up is not a competitor's load
        pending, streak = 0, 0
