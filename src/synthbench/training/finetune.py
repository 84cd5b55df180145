"""Fine-tune a sequence classifier with the HF Trainer, fast on a small CPU and honest about model selection.

Speed: texts are tokenized once without padding; batches are padded only to their longest text (dynamic
padding) and drawn from groups of similar length (``group_by_length``), so a batch of headlines costs what
headlines cost, not ``max_length``; validation texts are sorted by length for the same reason. The best epoch
is kept in memory instead of writing and re-reading a checkpoint every epoch. Torch uses every core this
process may run on; on a CUDA GPU training runs in bf16 (fp16 where bf16 is missing) mixed precision; large
effective batches come from gradient accumulation.

Model selection: the best epoch by Macro-F1 on a validation split of the training condition's own data
(never the test set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthbench.config import TrainParams
from synthbench.errors import TrainingError
from synthbench.threads import thread_budget

Rows = list[tuple[str, str]]
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class FitResult:
    seed: int
    best_epoch: int
    best_val: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_examples_per_s: float = 0.0
    precision: str = "fp32"
    device: str = "cpu"


def set_torch_threads(params: TrainParams) -> int:
    """torch's intra-op threads: ``train.torch_threads``, or (null) what :func:`synthbench.threads.thread_budget`
    allows this process (its CPU affinity, ``$SYNTHBENCH_THREADS``, ``$SYNTHBENCH_WORKERS``). Returns the count."""
    import torch

    threads = thread_budget(params.torch_threads)
    torch.set_num_threads(threads)
    return threads


def resolve_precision(setting: str, on_gpu: bool, bf16_supported: bool) -> str:
    """``train.mixed_precision`` → "bf16", "fp16" or "fp32". Mixed precision needs a CUDA GPU; "auto" picks bf16
    where the GPU has it, else fp16, and fp32 on CPU."""
    if setting == "no" or not on_gpu:
        if setting in ("bf16", "fp16") and not on_gpu:
            raise TrainingError(
                f"train.mixed_precision={setting} needs a CUDA GPU and none is visible; use auto or no"
            )
        return "fp32"
    if setting == "auto":
        return "bf16" if bf16_supported else "fp16"
    if setting == "bf16" and not bf16_supported:
        raise TrainingError("train.mixed_precision=bf16 but this GPU has no bf16; use fp16 or auto")
    return setting


def _macro_metrics(eval_pred: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(axis=-1)
    return {
        "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, preds)),
    }


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in message or "out of memory" in message
    )


def build_training_arguments(
    params: TrainParams, seed: int, work_dir: Path, on_gpu: bool, precision: str
) -> Any:
    """The Trainer settings of our fine_tune path (also used by benchmarks/training_throughput.py)."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=max(params.batch_size, 32),
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,  # a float < 1 is a fraction of the total steps
        eval_strategy="epoch",
        save_strategy="no",  # the best epoch is kept in memory (BestEpochKeeper), not checkpointed to disk
        logging_strategy="epoch",
        train_sampling_strategy="group_by_length",
        seed=seed,
        data_seed=seed,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not on_gpu,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        dataloader_pin_memory=on_gpu,
    )


def fine_tune(
    backbone_location: str,
    train_rows: Rows,
    val_rows: Rows,
    labels: Sequence[str],
    params: TrainParams,
    output_dir: Path,
    work_dir: Path,
    on_epoch: EpochCallback | None = None,
    seed: int | None = None,
) -> FitResult:
    """Train with ``seed`` (default: the first of ``params.seed_list``), keep the epoch with the best validation
    Macro-F1 (the first one on ties), and save that model + tokenizer to ``output_dir``. ``on_epoch(epoch,
    row)`` is called after each epoch's validation with train_loss, val_loss, val_macro_f1, val_accuracy."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        set_seed,
    )

    seed = params.seed_list[0] if seed is None else seed
    label_to_id = {name: i for i, name in enumerate(labels)}
    unknown = sorted({lab for _, lab in [*train_rows, *val_rows]} - set(label_to_id))
    if unknown:
        raise TrainingError(f"training labels {unknown} are not in the task's labels {list(labels)}")
    set_torch_threads(params)
    on_gpu = torch.cuda.is_available()
    precision = resolve_precision(params.mixed_precision, on_gpu, on_gpu and torch.cuda.is_bf16_supported())
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(backbone_location)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone_location,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=label_to_id,
    )
    model.config.synthbench_max_length = params.max_length

    def encode(rows: Rows, sort_by_length: bool = False) -> Dataset:
        data = Dataset.from_dict(
            {"text": [t for t, _ in rows], "label": [label_to_id[lab] for _, lab in rows]}
        )
        data = data.map(
            lambda batch: tokenizer(batch["text"], truncation=True, max_length=params.max_length),
            batched=True,
            remove_columns=["text"],
        )
        if sort_by_length:  # evaluation order does not matter; sorted batches pad least
            order = np.argsort([len(ids) for ids in data["input_ids"]], kind="stable")
            data = data.select(order.tolist())
        return data

    history: list[dict[str, float]] = []

    class EpochLogger(TrainerCallback):
        """Per-epoch row for the history, and the best epoch's weights kept in (CPU) memory."""

        def __init__(self) -> None:
            self.last_loss = float("nan")
            self.best_f1 = -1.0
            self.best_state: dict[str, Any] | None = None

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
        ) -> None:
            if logs and "loss" in logs:
                self.last_loss = float(logs["loss"])

        def on_evaluate(
            self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kw: Any
        ) -> None:
            metrics = metrics or {}
            epoch = round(state.epoch or 0)
            row = {
                "epoch": float(epoch),
                "train_loss": self.last_loss,
                "val_loss": float(metrics.get("eval_loss", float("nan"))),
                "val_macro_f1": float(metrics.get("eval_macro_f1", float("nan"))),
                "val_accuracy": float(metrics.get("eval_accuracy", float("nan"))),
            }
            history.append(row)
            if row["val_macro_f1"] > self.best_f1:
                self.best_f1 = row["val_macro_f1"]
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if on_epoch is not None:
                on_epoch(epoch, row)

    keeper = EpochLogger()
    trainer = Trainer(
        model=model,
        args=build_training_arguments(params, seed, work_dir, on_gpu, precision),
        train_dataset=encode(train_rows),
        eval_dataset=encode(val_rows, sort_by_length=True),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_macro_metrics,
        callbacks=[keeper],
    )
    trainer.remove_callback(PrinterCallback)  # per-epoch progress goes through on_epoch instead
    try:
        output = trainer.train()
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not _is_out_of_memory(exc):
            raise
        raise TrainingError(
            f"out of memory training with batch_size={params.batch_size}, max_length={params.max_length}; "
            f"lower train.batch_size (raise train.gradient_accumulation_steps to keep the effective batch) "
            f"or train.max_length"
        ) from None
    if keeper.best_state is not None:
        model.load_state_dict(keeper.best_state)
    trainer.save_model(str(output_dir))
    best = max(history, key=lambda row: row["val_macro_f1"]) if history else {}
    return FitResult(
        seed=seed,
        best_epoch=int(best.get("epoch", params.epochs)),
        best_val={k: v for k, v in best.items() if k.startswith("val_")},
        history=history,
        train_seconds=float(output.metrics.get("train_runtime", 0.0)),
        train_examples_per_s=float(output.metrics.get("train_samples_per_second", 0.0)),
        precision=precision,
        device="cuda" if on_gpu else "cpu",
    )
