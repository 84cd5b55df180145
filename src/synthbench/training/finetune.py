"""Fine-tune a sequence classifier with the HF Trainer: dynamic padding, length-grouped batches, best epoch
chosen on a validation split of the training condition's own data (never the test set)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthbench.config import TrainParams
from synthbench.errors import TrainingError

Rows = list[tuple[str, str]]
EpochCallback = Callable[[int, dict[str, float]], None]


def validation_split(rows: Rows, fraction: float, seed: int) -> tuple[Rows, Rows]:
    """Stratified: round(f·n) of each label (at least 1 when a label has ≥ 2 rows) go to validation."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, (_, label) in enumerate(rows):
        by_label[label].append(index)
    rng = random.Random(seed)
    val_idx: set[int] = set()
    for label in sorted(by_label):
        indices = by_label[label][:]
        if len(indices) < 2:
            continue
        rng.shuffle(indices)
        val_idx.update(indices[: max(1, round(fraction * len(indices)))])
    train = [row for i, row in enumerate(rows) if i not in val_idx]
    val = [row for i, row in enumerate(rows) if i in val_idx]
    if not val or not train:
        raise TrainingError(
            f"too few examples to split ({len(rows)} rows): need at least 2 of some label; "
            f"generate or prepare more data (generate.per_label / prepare.train_per_label)"
        )
    return train, val


@dataclass
class FitResult:
    best_epoch: int
    best_val: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_examples_per_s: float = 0.0


def _macro_metrics(eval_pred: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(axis=-1)
    return {
        "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, preds)),
    }


def fine_tune(
    backbone_location: str,
    train_rows: Rows,
    val_rows: Rows,
    labels: Sequence[str],
    params: TrainParams,
    output_dir: Path,
    work_dir: Path,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train, keep the best epoch by validation Macro-F1, and save model + tokenizer to ``output_dir``."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    label_to_id = {name: i for i, name in enumerate(labels)}
    unknown = sorted({lab for _, lab in [*train_rows, *val_rows]} - set(label_to_id))
    if unknown:
        raise TrainingError(f"training labels {unknown} are not in the task's labels {list(labels)}")
    torch.set_num_threads(params.torch_threads or torch.get_num_threads())
    set_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(backbone_location)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone_location,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=label_to_id,
    )
    model.config.synthbench_max_length = params.max_length

    def encode(rows: Rows) -> Dataset:
        data = Dataset.from_dict({"text": [t for t, _ in rows], "label": [label_to_id[lab] for _, lab in rows]})
        return data.map(
            lambda batch: tokenizer(batch["text"], truncation=True, max_length=params.max_length),
            batched=True,
            remove_columns=["text"],
        )

    history: list[dict[str, float]] = []

    class EpochLogger(TrainerCallback):
        def __init__(self) -> None:
            self.last_loss = float("nan")

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                self.last_loss = float(logs["loss"])

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                        **kw: Any) -> None:
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
            if on_epoch is not None:
                on_epoch(epoch, row)

    on_gpu = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=max(params.batch_size, 32),
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        seed=params.seed,
        data_seed=params.seed,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=encode(train_rows),
        eval_dataset=encode(val_rows),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_macro_metrics,
        callbacks=[EpochLogger()],
    )
    try:
        output = trainer.train()
    except torch.OutOfMemoryError:
        raise TrainingError(
            f"out of memory training with batch_size={params.batch_size}, max_length={params.max_length}; "
            f"lower train.batch_size or train.max_length"
        ) from None
    trainer.save_model(str(output_dir))
    best = max(history, key=lambda row: row["val_macro_f1"]) if history else {}
    seconds = float(output.metrics.get("train_runtime", 0.0))
    return FitResult(
        best_epoch=int(best.get("epoch", params.epochs)),
        best_val={k: v for k, v in best.items() if k.startswith("val_")},
        history=history,
        train_seconds=seconds,
        train_examples_per_s=float(output.metrics.get("train_samples_per_second", 0.0)),
    )
