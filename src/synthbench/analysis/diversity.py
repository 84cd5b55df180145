"""Diversity of a text set, and its closeness to real data, on sentence embeddings (Li et al. 2023;
Cox et al. 2021).

Embeddings are float arrays (n, d), one row per text, assumed L2-normalised (``embed_texts`` returns them so;
otherwise call :func:`l2_normalise`). Then the dot product is the cosine similarity, and the distance used
throughout is the cosine distance ``1 - cosine similarity`` (0 = same direction, 1 = orthogonal,
2 = opposite).

- Remote-Clique: mean over instances of the mean distance to all OTHER instances. Higher = more diverse.
- Chamfer: mean over instances of the distance to the nearest OTHER instance. Higher = more diverse.
- Closeness: for each real text, the mean of its top-k cosine similarities to the synthetic texts,
  averaged over the real texts. Higher = synthetic data closer to real data.

The default functions never build an n×n matrix, so they scale to large sets: Chamfer and closeness take row
blocks of ``block_size`` against all columns (memory O(block_size · n)); Remote-Clique uses an exact identity
on the sum of the embeddings (memory O(d)). The ``*_naive`` versions build the full matrix; they are the
references for tests and the benchmark.
"""

from __future__ import annotations

import numpy as np

from synthbench.encoder import default_encoder_path, embed_texts

__all__ = ["default_encoder_path", "embed_texts"]  # re-exported: the encoder moved below the stages

# How far a row norm may stray from 1 before we refuse the input: float32 rounding is ~1e-7, so this only
# catches embeddings nobody normalised.
_NORM_TOLERANCE = 1e-3


def l2_normalise(emb: np.ndarray) -> np.ndarray:
    """Return ``emb`` (n, d) with every row scaled to unit L2 norm (same dtype; a new array).

    Raises ValueError on an all-zero row, which has no direction.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (n, d), got shape {emb.shape}")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"row {int(np.flatnonzero(norms == 0)[0])} is all zeros and cannot be normalised")
    return emb / norms.astype(emb.dtype)


def _check_embeddings(emb: np.ndarray, *, min_rows: int = 2, name: str = "embeddings") -> np.ndarray:
    """Return ``emb`` as a floating array (n, d) after checking its shape, row count and unit row norms."""
    emb = np.asarray(emb)
    if not np.issubdtype(emb.dtype, np.floating):
        emb = emb.astype(np.float32)
    if emb.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d), got shape {emb.shape}")
    if emb.shape[0] < min_rows:
        raise ValueError(f"{name} need at least {min_rows} rows, got {emb.shape[0]}")
    # Row norms only (n,), no (n, d) temporary. A NaN or infinite entry makes its row norm NaN or inf, which
    # fails the "close to 1" test below (NaN compares False), so this also checks finiteness.
    norms = np.sqrt(np.einsum("ij,ij->i", emb, emb))
    off = ~(np.abs(norms - 1.0) <= _NORM_TOLERANCE)
    if off.any():
        row = int(np.flatnonzero(off)[0])
        if not np.isfinite(emb[row]).all():
            raise ValueError(f"{name} contain NaN or infinite values (row {row})")
        raise ValueError(
            f"{name} must be L2-normalised; row {row} has norm {norms[row]:.4g} (use l2_normalise)"
        )
    return emb


def _check_block_size(block_size: int) -> None:
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")


def remote_clique(emb: np.ndarray, *, block_size: int = 2048) -> float:
    """Remote-Clique diversity: mean over instances of the mean cosine distance to all other instances.

    Uses the exact identity ``sum_{i != j} e_i·e_j = |sum_i e_i|^2 - sum_i |e_i|^2``, so no pairwise matrix is
    needed at all: time O(n·d), memory O(block_size·d) (the sums run in float64 over row blocks of the input).
    Because every instance has the same number (n - 1) of others, the mean of per-instance means equals the
    mean over all ordered pairs i != j, which is what the identity gives.

    Args:
        emb: float array (n, d), L2-normalised, n ≥ 2.
        block_size: rows converted to float64 at a time.

    Returns:
        Mean cosine distance in [0, 2].
    """
    emb = _check_embeddings(emb)
    _check_block_size(block_size)
    n = emb.shape[0]
    total = np.zeros(emb.shape[1], dtype=np.float64)
    self_similarity = 0.0
    for start in range(0, n, block_size):
        block = emb[start : start + block_size].astype(np.float64)
        total += block.sum(axis=0)
        self_similarity += float(np.einsum("ij,ij->", block, block))
    mean_similarity_to_others = (float(total @ total) - self_similarity) / (n * (n - 1))
    return 1.0 - mean_similarity_to_others


def chamfer(emb: np.ndarray, *, block_size: int = 2048) -> float:
    """Chamfer diversity: mean over instances of the cosine distance to the nearest other instance.

    "Other" means another row, so an exact duplicate counts as distance 0. Rows are processed in blocks of
    ``block_size`` against all n rows: memory O(block_size · n), never n × n.

    Args:
        emb: float array (n, d), L2-normalised, n ≥ 2.
        block_size: rows per block; larger is faster until the (block_size, n) block stops fitting in RAM.

    Returns:
        Mean nearest-neighbour cosine distance in [0, 2].
    """
    emb = _check_embeddings(emb)
    _check_block_size(block_size)
    n = emb.shape[0]
    nearest_similarity = np.empty(n, dtype=np.float64)
    # One reused (block_size, n) buffer: rebinding a fresh product each block would hold two blocks at once.
    buffer = np.empty((min(block_size, n), n), dtype=emb.dtype)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        similarities = np.matmul(emb[start:stop], emb.T, out=buffer[: stop - start])  # (stop - start, n)
        # Exclude each row's similarity to itself: set the block's diagonal entries to -inf.
        rows = np.arange(stop - start)
        similarities[rows, start + rows] = -np.inf
        nearest_similarity[start:stop] = similarities.max(axis=1)
    return float(np.mean(1.0 - nearest_similarity))


def closeness(real_emb: np.ndarray, synth_emb: np.ndarray, *, k: int = 5, block_size: int = 2048) -> float:
    """Closeness of synthetic to real data: per real text, the mean of its top-k cosine similarities to the
    synthetic texts; then the mean over real texts.

    Args:
        real_emb: float array (n_real, d), L2-normalised, n_real ≥ 1.
        synth_emb: float array (n_synth, d), L2-normalised, n_synth ≥ 1.
        k: neighbours per real text; capped at n_synth.
        block_size: real rows per block; memory O(block_size · n_synth).

    Returns:
        Mean cosine similarity in [-1, 1]; higher = closer.
    """
    real_emb, synth_emb, k = _check_closeness_inputs(real_emb, synth_emb, k)
    _check_block_size(block_size)
    n_real, n_synth = real_emb.shape[0], synth_emb.shape[0]
    top_k_means = np.empty(n_real, dtype=np.float64)
    dtype = np.result_type(real_emb, synth_emb)
    buffer = np.empty((min(block_size, n_real), n_synth), dtype=dtype)  # reused: one block alive at a time
    for start in range(0, n_real, block_size):
        stop = min(start + block_size, n_real)
        similarities = np.matmul(real_emb[start:stop], synth_emb.T, out=buffer[: stop - start])
        # In-place partition: the k largest land in the last k columns (unordered); O(n_synth) a row.
        similarities.partition(n_synth - k, axis=1)
        top_k = similarities[:, n_synth - k :]
        top_k_means[start : start + block_size] = top_k.mean(axis=1, dtype=np.float64)
    return float(top_k_means.mean())


def _check_closeness_inputs(
    real_emb: np.ndarray, synth_emb: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, int]:
    real_emb = _check_embeddings(real_emb, min_rows=1, name="real embeddings")
    synth_emb = _check_embeddings(synth_emb, min_rows=1, name="synthetic embeddings")
    if real_emb.shape[1] != synth_emb.shape[1]:
        raise ValueError(
            f"real and synthetic embeddings differ in dimension: {real_emb.shape[1]} vs {synth_emb.shape[1]}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return real_emb, synth_emb, min(k, synth_emb.shape[0])


# ----------------------------------------------------------------------------------------------------
# Naive references: build the full matrix. Obviously correct, O(n^2) memory; for tests and the benchmark only.
# ----------------------------------------------------------------------------------------------------


def _distance_matrix_naive(emb: np.ndarray) -> np.ndarray:
    emb = _check_embeddings(emb)
    distances = emb @ emb.T  # (n, n) similarities
    return np.subtract(1.0, distances, out=distances)  # in place: one n×n matrix, not two


def remote_clique_naive(emb: np.ndarray) -> float:
    """Reference Remote-Clique on the full (n, n) distance matrix; same contract as :func:`remote_clique`."""
    distances = _distance_matrix_naive(emb)
    n = distances.shape[0]
    np.fill_diagonal(distances, 0.0)  # a row's distance to itself is not a distance to an "other"
    mean_to_others = distances.sum(axis=1, dtype=np.float64) / (n - 1)
    return float(mean_to_others.mean())


def chamfer_naive(emb: np.ndarray) -> float:
    """Reference Chamfer on the full (n, n) distance matrix; same contract as :func:`chamfer`."""
    distances = _distance_matrix_naive(emb)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min(axis=1).mean(dtype=np.float64))


def closeness_naive(real_emb: np.ndarray, synth_emb: np.ndarray, *, k: int = 5) -> float:
    """Reference closeness on the full (n_real, n_synth) similarity matrix, sorted; same contract as
    :func:`closeness`."""
    real_emb, synth_emb, k = _check_closeness_inputs(real_emb, synth_emb, k)
    similarities = np.sort(real_emb @ synth_emb.T, axis=1)  # ascending
    return float(similarities[:, -k:].mean(axis=1, dtype=np.float64).mean())
