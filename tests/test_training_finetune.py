"""fine_tune on the real MiniLM (from its wheel), tiny data: a fixed seed reproduces the run exactly; memory
exhaustion and impossible precision settings become one-line TrainingErrors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tests.test_training_data import FRESH, LABELS, ROTTEN

from synthbench.classifier import TextClassifier
from synthbench.config import TrainParams
from synthbench.errors import TrainingError
from synthbench.training.backbones import resolve_backbone
from synthbench.training.finetune import build_training_arguments, fine_tune, resolve_precision

pytestmark = pytest.mark.slow
TRAIN = [(t, "fresh") for t in FRESH[:5]] + [(t, "rotten") for t in ROTTEN[:5]]
VAL = [(FRESH[5], "fresh"), (ROTTEN[5], "rotten")]
TEST = FRESH[7:] + ROTTEN[7:]
PARAMS = TrainParams(epochs=1, batch_size=4, max_length=32, learning_rate=1e-4)


def train_and_predict(tmp_path: Path, name: str, seed: int) -> tuple[list[dict[str, float]], np.ndarray]:
    result = fine_tune(
        resolve_backbone("minilm-l6"),
        TRAIN,
        VAL,
        LABELS,
        PARAMS,
        tmp_path / name / "model",
        tmp_path / name / "work",
        seed=seed,
    )
    assert result.seed == seed and result.best_epoch == 1 and len(result.history) == 1
    return result.history, TextClassifier.load(tmp_path / name / "model").predict_proba(TEST)


def test_same_seed_gives_the_same_history_and_test_predictions(tmp_path: Path) -> None:
    history_a, proba_a = train_and_predict(tmp_path, "a", seed=0)
    history_b, proba_b = train_and_predict(tmp_path, "b", seed=0)
    _, proba_c = train_and_predict(tmp_path, "c", seed=1)
    assert history_a == history_b
    np.testing.assert_array_equal(proba_a, proba_b)  # bit-identical → identical metrics
    assert not np.allclose(proba_a, proba_c)  # and the seed matters (head init, batch order)


def test_out_of_memory_is_a_training_error_naming_the_fix(tmp_path: Path) -> None:
    # A real allocation failure: the child process caps its address space, then trains long texts in big
    # batches (MiniLM at 512 tokens needs several GB of activations for a batch of 64).
    script = textwrap.dedent("""
        import resource, sys
        from pathlib import Path
        import datasets, torch, transformers  # noqa: F401  (imported before the cap)
        from synthbench.config import TrainParams
        from synthbench.errors import TrainingError
        from synthbench.training.backbones import resolve_backbone
        from synthbench.training.finetune import fine_tune

        location = resolve_backbone("minilm-l6")
        rows = [(f"{i} " + "word " * 600, "fresh" if i % 2 else "rotten") for i in range(64)]
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + 1_200_000_000, resource.RLIM_INFINITY))
        params = TrainParams(epochs=1, batch_size=64, max_length=512)
        try:
            fine_tune(location, rows, rows[:2], ["fresh", "rotten"], params, Path(sys.argv[1]) / "m",
                      Path(sys.argv[1]) / "w")
        except TrainingError as exc:
            print("TrainingError:", exc)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("TrainingError:")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    assert "out of memory training with batch_size=64, max_length=512" in lines[0]
    assert "lower train.batch_size" in lines[0] and "train.gradient_accumulation_steps" in lines[0]


def test_mixed_precision_follows_the_device() -> None:
    assert resolve_precision("auto", on_gpu=False, bf16_supported=False) == "fp32"
    assert resolve_precision("auto", on_gpu=True, bf16_supported=True) == "bf16"
    assert resolve_precision("auto", on_gpu=True, bf16_supported=False) == "fp16"
    assert resolve_precision("no", on_gpu=True, bf16_supported=True) == "fp32"
    with pytest.raises(TrainingError, match="mixed_precision=bf16 needs a CUDA GPU"):
        resolve_precision("bf16", on_gpu=False, bf16_supported=False)
    with pytest.raises(TrainingError, match="this GPU has no bf16; use fp16 or auto"):
        resolve_precision("bf16", on_gpu=True, bf16_supported=False)


def test_training_arguments_accumulate_gradients_and_write_no_checkpoints(tmp_path: Path) -> None:
    params = TrainParams(batch_size=8, gradient_accumulation_steps=4)
    args = build_training_arguments(params, seed=3, work_dir=tmp_path, on_gpu=False, precision="fp32")
    assert args.gradient_accumulation_steps == 4 and args.per_device_train_batch_size == 8
    assert args.save_strategy == "no" and args.eval_strategy == "epoch" and args.seed == 3
    assert not args.bf16 and not args.fp16
