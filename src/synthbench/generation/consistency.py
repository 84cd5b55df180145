"""Label consistency (ZeroGen's "correctness" filter; confident learning): a real-data oracle reads each generated
text, and a text whose intended label the oracle rejects with confidence ≥ τ is dropped as
``label_inconsistent``. "Rejects with confidence ≥ τ" means the oracle's most likely label is another one and
it gives that label probability ≥ τ (``generate.label_consistency_threshold``).

The oracle is logistic regression on MiniLM sentence embeddings (rows L2-normalised) of the task's real *train*
split, never its test split. It is cross-fitted: the real rows are split into K stratified folds and K oracles
are fit, each without one fold. A generated text equal to a real train row (``text_key``: a grounded or few-shot
answer that copied it) is read by the one oracle that never saw that row; every other text by the mean of the K
oracles' probabilities. So no text is scored by a model trained on it, and the out-of-fold accuracy on the real
rows (``cv_accuracy``) says how far the oracle's word can be trusted on this task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from synthbench.data.text import text_key
from synthbench.encoder import cheap_classifier, embed_texts  # both load their libraries on first use
from synthbench.errors import ConfigError

if TYPE_CHECKING:  # scikit-learn costs ~1 s to import: only a stage with the filter on pays it
    from sklearn.linear_model import LogisticRegression

REJECT_LABEL_INCONSISTENT = "label_inconsistent"

Embed = Callable[[Sequence[str]], np.ndarray]  # texts → float32 (n, d), rows L2-normalised


@dataclass
class LabelConsistency:
    """The fitted, cross-fitted oracle; build with :meth:`fit`.

    ``labels``: the task's label names (column order of :meth:`probabilities`); ``models``: one per fold;
    ``held_out``: ``text_key`` of each real train row → the fold that left it out; ``cv_accuracy``: out-of-fold
    accuracy on the real train rows (fraction); ``n_real``: real rows fit on."""

    threshold: float
    labels: list[str]
    models: list[LogisticRegression]
    held_out: dict[str, int]
    cv_accuracy: float
    n_real: int
    embed: Embed = embed_texts

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: Sequence[str],
        label_names: Sequence[str],
        threshold: float,
        *,
        folds: int = 5,
        seed: int = 0,
        embed: Embed = embed_texts,
        where: str = "the real train split",
    ) -> LabelConsistency:
        """Fit K = ``folds`` oracles on ``texts``/``labels`` (the real train rows). Raises ConfigError, naming
        ``where`` and the fix, when a label has fewer rows than folds (its held-out folds could not hold it)."""
        from sklearn.model_selection import StratifiedKFold

        names = list(label_names)
        counts = {name: sum(1 for label in labels if label == name) for name in names}
        thin = {name: n for name, n in counts.items() if n < folds}
        if thin:
            raise ConfigError(
                f"generate.label_consistency_threshold: {where} has fewer than label_consistency_folds={folds} "
                f"rows for {thin}; raise prepare.train_per_label, lower generate.label_consistency_folds, or set "
                "generate.label_consistency_threshold: null"
            )
        emb = embed(list(texts))
        y = np.asarray(list(labels))
        keys = [text_key(text) for text in texts]
        models: list[LogisticRegression] = []
        held_out: dict[str, int] = {}
        correct = 0
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fold, (fit_rows, out_rows) in enumerate(splitter.split(emb, y)):
            model = cheap_classifier(emb[fit_rows], y[fit_rows], seed)
            models.append(model)
            correct += int(np.sum(model.predict(emb[out_rows]) == y[out_rows]))
            for row in out_rows:
                held_out[keys[row]] = fold
        return cls(threshold, names, models, held_out, correct / len(y), len(y), embed)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """float (n, len(labels)): each text's label probabilities from the oracle(s) that never saw it."""
        if len(texts) == 0:
            return np.empty((0, len(self.labels)))
        emb = self.embed(list(texts))
        per_model = np.stack([self._ordered(model, emb) for model in self.models])  # (K, n, labels)
        out = per_model.mean(axis=0)
        for row, text in enumerate(texts):
            fold = self.held_out.get(text_key(text))
            if fold is not None:
                out[row] = per_model[fold, row]
        return out

    def rejects(self, texts: Sequence[str], intended: Sequence[str]) -> list[bool]:
        """Per text: True when the oracle reads another label than ``intended`` with probability ≥ threshold."""
        probs = self.probabilities(texts)
        index = {name: i for i, name in enumerate(self.labels)}
        verdicts = []
        for row, label in enumerate(intended):
            best = int(np.argmax(probs[row]))
            verdicts.append(best != index[label] and probs[row, best] >= self.threshold)
        return verdicts

    def describe(self) -> dict[str, float | int]:
        """What the summary and card record of the oracle."""
        return {
            "threshold": self.threshold,
            "folds": len(self.models),
            "oracle_cv_accuracy": round(self.cv_accuracy, 4),
            "n_real": self.n_real,
        }

    def _ordered(self, model: LogisticRegression, emb: np.ndarray) -> np.ndarray:
        """``model``'s probabilities with columns in ``labels`` order (sklearn sorts its classes)."""
        column = {str(name): i for i, name in enumerate(model.classes_)}
        return model.predict_proba(emb)[:, [column[name] for name in self.labels]]
