"""The embedded model re-encoded for llama.cpp's fast CPU kernels (generation/weights.py): the same weights in
another block format, converted once and never left half-written, one line naming the fix when it cannot be
made, and the engine each kind of server gets by default."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize

from synthbench.assets import embedded_gguf_path
from synthbench.errors import EndpointError
from synthbench.generation import llama_build
from synthbench.generation.weights import converted_gguf, resolve_gguf_type

QUANTIZE = llama_build.built_binary("llama-quantize")
needs_quantize = pytest.mark.skipif(
    QUANTIZE is None,
    reason="llama.cpp's tools are not built on this machine (python -m synthbench.generation.llama_build)",
)


@needs_quantize
def test_q8_0_holds_the_shipped_weights_within_six_percent_of_a_q4_1_step(tmp_path: Path) -> None:
    assert QUANTIZE is not None
    source = embedded_gguf_path()
    shipped, converted = GGUFReader(source), GGUFReader(converted_gguf(source, "Q8_0", QUANTIZE, tmp_path))
    assert collections.Counter(t.tensor_type.name for t in shipped.tensors) == {
        "Q4_1": 210,
        "F32": 61,
        "Q8_0": 1,
    }
    assert collections.Counter(t.tensor_type.name for t in converted.tensors) == {"Q8_0": 211, "F32": 61}
    assert converted.fields["tokenizer.ggml.tokens"].data == shipped.fields["tokenizer.ggml.tokens"].data
    by_name = {t.name: t for t in converted.tensors}
    worst = 0.0
    for tensor in shipped.tensors[::9]:  # every 9th tensor: all kinds of layer, in seconds
        mine = by_name[tensor.name]
        assert list(mine.shape) == list(tensor.shape)
        before = dequantize(tensor.data, tensor.tensor_type).reshape(-1, 32)
        after = dequantize(mine.data, mine.tensor_type).reshape(-1, 32)
        if tensor.tensor_type.name == "F32":
            assert np.array_equal(before, after)
            continue
        if tensor.tensor_type.name != "Q4_1":
            continue
        step = (
            before.max(axis=1) - before.min(axis=1)
        ) / 15  # a Q4_1 block's step: 16 levels from min to max
        moved = np.abs(after - before).max(axis=1)
        worst = max(worst, float((moved[step > 0] / step[step > 0]).max()))
    assert 0.0 < worst < 0.06  # re-encoded (not a copy), each weight within 6% of its old step


@needs_quantize
def test_the_conversion_is_made_once_and_named_by_what_it_was_made_from(tmp_path: Path) -> None:
    assert QUANTIZE is not None
    first = converted_gguf(embedded_gguf_path(), "Q8_0", QUANTIZE, tmp_path)
    assert first.name.startswith("SmolLM2-135M-Instruct.Q8_0-from-Q4_1-0.1.2-llama.cpp-")
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left
    made = first.stat().st_mtime_ns
    again = converted_gguf(embedded_gguf_path(), "Q8_0", tmp_path / "no-such-binary", tmp_path)
    assert again == first and again.stat().st_mtime_ns == made  # found, not converted again


@needs_quantize
def test_a_failed_conversion_is_one_line_and_leaves_no_file(tmp_path: Path) -> None:
    assert QUANTIZE is not None
    broken = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 60)  # the magic, then nonsense: llama-quantize itself rejects it
    out = tmp_path / "out"
    with pytest.raises(EndpointError) as raised:
        converted_gguf(broken, "Q8_0", QUANTIZE, out)
    message = str(raised.value)
    assert message.startswith("converting SmolLM2-135M-Instruct.Q4_1.gguf to Q8_0 failed (exit 1")
    assert message.endswith("set generate.endpoint.gguf_type: Q4_1 to use the shipped file")
    assert "\n" not in message
    assert list(out.iterdir()) == []  # neither the model nor a partial file


def test_a_missing_quantize_binary_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        EndpointError, match=r"llama-quantize not found .* or set generate.endpoint.gguf_type: Q4_1$"
    ):
        converted_gguf(embedded_gguf_path(), "Q8_0", tmp_path / "bin" / "llama-quantize", tmp_path / "gguf")
    assert not (tmp_path / "gguf").exists()


@pytest.mark.parametrize(
    ("asked", "engine", "served"),
    [
        (None, "llama-server", "Q8_0"),  # its build has llama-quantize
        (None, "llama-cpp-python", "Q4_1"),  # nothing to build: the shipped file
        ("Q4_1", "llama-server", "Q4_1"),
        ("Q8_0", "llama-cpp-python", "Q8_0"),
    ],
)
def test_which_file_each_engine_serves(asked: str | None, engine: str, served: str) -> None:
    assert resolve_gguf_type(asked, engine) == served  # type: ignore[arg-type]
