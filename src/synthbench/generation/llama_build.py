"""llama.cpp's own ``llama-server`` (with ``llama-quantize`` and ``llama-batched-bench``), built once per machine
from the ``vendor/llama.cpp`` tree of the pinned llama-cpp-python sdist into the synthbench cache.

Offline and portable: the sdist comes from PyPI (``pip download --no-deps --no-binary``, sha256-pinned in
:mod:`synthbench.assets`); cmake runs with the web UI, its prebuilt-asset download, curl and OpenSSL off and
``GGML_NATIVE=OFF`` (a binary that runs on any x86-64 of the machine family, like the pip build), under
``nice -n 19``, one build at a time per cache (a file lock). A missing cmake or compiler is one line naming it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from synthbench.assets import PINNED_SDISTS, cache_dir, fetch_sdist
from synthbench.errors import EndpointError

SDIST = "llama-cpp-python"
TARGETS = ("llama-server", "llama-quantize", "llama-batched-bench")  # a cache missing one is rebuilt
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DBUILD_SHARED_LIBS=OFF",  # self-contained binaries: nothing to find at run time
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else cmake downloads the web UI
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
)
BUILD_ENV = "SYNTHBENCH_BUILD_JOBS"  # parallel compile jobs (default: the cores this process may use)


def engine_dir() -> Path:
    """Where the binaries of the pinned llama.cpp live: ``<cache>/llama.cpp/<version>-<sha256[:12]>/bin``."""
    pin = PINNED_SDISTS[SDIST]
    return cache_dir() / "llama.cpp" / f"{pin.version}-{pin.sha256[:12]}" / "bin"


def built_binary(name: str = "llama-server") -> Path | None:
    """The built binary ``name`` when it exists (nothing is built), else None."""
    path = engine_dir() / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def ensure_built(progress: Callable[[str], None] | None = None, *, jobs: int | None = None) -> Path:
    """The folder holding ``llama-server``, ``llama-quantize`` and ``llama-batched-bench``, building them first if
    needed (minutes on 2 cores; once per machine and pinned version). ``progress(line)`` receives one line per phase."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    target = engine_dir()
    if all((target / name).is_file() for name in TARGETS):
        return target
    missing = [tool for tool in ("cmake", "c++", "cc") if shutil.which(tool, path=_tool_path()) is None]
    if missing:
        raise EndpointError(
            f"building llama-server needs {', '.join(missing)} on PATH; install cmake and a C/C++ compiler "
            "(e.g. apt-get install cmake g++), or set generate.endpoint.engine: llama-cpp-python"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(target.parent / "build.lock"):
        if all((target / name).is_file() for name in TARGETS):  # another process built it meanwhile
            return target
        sdist = fetch_sdist(SDIST)
        with tempfile.TemporaryDirectory(prefix="build-", dir=target.parent) as tmp:
            source = _unpack_llama_cpp(sdist, Path(tmp))
            build = Path(tmp) / "build"
            jobs = jobs or int(os.environ.get(BUILD_ENV) or 0) or max(1, len(_affinity()))
            started = time.monotonic()
            say(
                f"building llama-server from {sdist.name} into {target} (once per machine; ~10 min on 2 cores)"
            )
            _run(
                ["cmake", "-S", str(source), "-B", str(build), "-G", _generator(), *CMAKE_OPTIONS],
                "configure",
            )
            say(f"compiling {' and '.join(TARGETS)} with {jobs} job(s) under nice -n 19 …")
            _run(
                ["nice", "-n", "19", "cmake", "--build", str(build), "-j", str(jobs), "--target", *TARGETS],
                "build",
                say,
            )
            staging = Path(tmp) / "bin"
            staging.mkdir()
            for name in TARGETS:
                shutil.copy2(build / "bin" / name, staging / name)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
            say(f"built llama-server in {time.monotonic() - started:.0f} s: {target}")
    return target


def _affinity() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def _tool_path() -> str:
    """PATH with this interpreter's scripts folder first: the cmake and ninja that synthbench's own requirements
    install into its venv are found even when the venv is not on PATH (``.venv/bin/python -m …``)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])


def _generator() -> str:
    return "Ninja" if shutil.which("ninja", path=_tool_path()) else "Unix Makefiles"


def _unpack_llama_cpp(sdist: Path, into: Path) -> Path:
    """Extract only ``vendor/llama.cpp`` of the sdist; return its root."""
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in f"{m.name}/"]
        if not members:
            raise EndpointError(f"{sdist}: no vendor/llama.cpp inside; the pinned sdist changed shape")
        archive.extractall(into, members=members, filter="data")
    roots = sorted(into.glob("*/vendor/llama.cpp"))
    return roots[0]


def _run(cmd: list[str], phase: str, say: Callable[[str], None] | None = None, every_s: float = 30.0) -> None:
    """Run a cmake step, its output in a log file; with ``say``, a progress line (ninja's ``[n/m]``) at most
    every ``every_s`` seconds. A failure is one line with the first error and the log's path."""
    log = Path(tempfile.gettempdir()) / f"synthbench-llama-build-{phase}.log"
    last_said = time.monotonic()
    with log.open("w") as handle:
        process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PATH": _tool_path()},
        )
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            step = _STEP.match(line)
            if say is not None and step and time.monotonic() - last_said >= every_s:
                say(f"compiling llama-server: step {step.group(1)}/{step.group(2)}")
                last_said = time.monotonic()
        returncode = process.wait()
    if returncode != 0:
        raise EndpointError(
            f"llama-server {phase} failed (exit {returncode}: {error_line(log.read_text(errors='replace'))}); "
            f"full log: {log}; "
            "or set generate.endpoint.engine: llama-cpp-python"
        )


def error_line(output: str) -> str:
    """The line of a tool's ``output`` that says what went wrong: its first mentioning "error", else its last
    non-blank one; stripped and cut to 160 characters for a one-line message."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")[:160]


_STEP = re.compile(
    r"^\[(\d+)/(\d+)\]"
)  # ninja: "[12/210] Building CXX object …"; make: "[ 12%] …" is not matched


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if __name__ == "__main__":  # python -m synthbench.generation.llama_build
    print(ensure_built())
