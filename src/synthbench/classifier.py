"""A fine-tuned text classifier on disk (a transformers model directory + label names), shared by the train
stage (which writes it), the evaluate stage (which scores it) and the MLflow pyfunc wrapper (which serves it)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthbench.errors import TrainingError


class TextClassifier:
    """Load with ``TextClassifier.load(dir)`` (a model directory, or a train stage output directory: its
    deployed seed's model); ``predict_proba(texts)`` → float32 (n, n_labels)."""

    def __init__(self, model: Any, tokenizer: Any, labels: list[str], max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length

    @classmethod
    def load(cls, path: str | Path, max_length: int | None = None) -> TextClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from synthbench.records import TrainingManifest

        model_dir = Path(path)
        manifest = model_dir / "training.json"
        if not (model_dir / "config.json").exists() and manifest.exists():
            # A train stage output (models/<task>/<condition>/<backbone>/): its deployed seed's model.
            model_dir = model_dir / TrainingManifest.read(manifest).selected_model_dir
        if not (model_dir / "config.json").exists():
            raise TrainingError(f"{model_dir}: no trained model here; run the train stage (dvc repro) first")
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        id2label = model.config.id2label
        labels = [id2label[i] for i in range(len(id2label))]
        limit = max_length or int(getattr(model.config, "synthbench_max_length", 128))
        return cls(model, tokenizer, labels, limit)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, float32 array (len(texts), len(self.labels)), rows in input order. Texts are
        batched by length so padding stays small."""
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in idx],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(device)
                logits = self.model(**batch).logits
                out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        proba = self.predict_proba(texts, batch_size=batch_size)
        return [self.labels[i] for i in proba.argmax(axis=1)]


def texts_fingerprint(texts: Sequence[str]) -> str:
    """md5 (hex) of the texts in order: which texts, in which order, a set of scores belongs to."""
    return hashlib.md5(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def save_scores(
    path: Path, texts: Sequence[str], labels: Sequence[str], proba: Mapping[int, np.ndarray]
) -> None:
    """Write each seed's class probabilities on ``texts`` (float32 (len(texts), len(labels)), ``labels`` order)
    to ``path`` (.npz), with the texts' fingerprint and the label names they belong to; atomically."""
    arrays = {f"seed_{seed}": np.asarray(p, dtype=np.float32) for seed, p in proba.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, fingerprint=np.array(texts_fingerprint(texts)), labels=np.array(list(labels)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_scores(path: Path, texts: Sequence[str], labels: Sequence[str], seed: int) -> np.ndarray | None:
    """``seed``'s probabilities saved by :func:`save_scores`, or None when there are none for exactly these texts
    and labels (no file, another test set, another label order, another seed): the caller then scores the model."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as saved:
        if (
            f"seed_{seed}" not in saved.files
            or str(saved["fingerprint"]) != texts_fingerprint(texts)
            or saved["labels"].tolist() != list(labels)
        ):
            return None
        proba = saved[f"seed_{seed}"]
    return proba if proba.shape == (len(texts), len(labels)) else None


def _texts_from_input(model_input: Any) -> list[str]:
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        return [str(t) for t in model_input[column].tolist()]
    if isinstance(model_input, pd.Series):
        return [str(t) for t in model_input.tolist()]
    if isinstance(model_input, str):
        return [model_input]
    return [str(t) for t in model_input]


try:  # mlflow is a hard dependency; the guard keeps this module importable in minimal tooling contexts
    import mlflow.pyfunc

    class PyfuncTextClassifier(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc: raw text in (a DataFrame with a ``text`` column, or a list of str), label names out."""

        def load_context(self, context: Any) -> None:
            self.classifier = TextClassifier.load(context.artifacts["model_dir"])

        # model_input is left unannotated on purpose: MLflow validates inputs against type hints, and the
        # logged signature (a column of strings) already describes them.
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return self.classifier.predict(_texts_from_input(model_input))

except ImportError:  # pragma: no cover
    PyfuncTextClassifier = None  # type: ignore[assignment,misc]
