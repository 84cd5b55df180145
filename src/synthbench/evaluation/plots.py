"""Evaluation figures (matplotlib, Agg backend; written atomically)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from synthbench.data.io import pyplot, save_png


def plot_confusion(
    labels: Sequence[str], matrix: Sequence[Sequence[int]], path: Path, title: str = ""
) -> None:
    """Confusion matrix as a PNG: rows = true label, columns = predicted label (``labels`` order), counts in
    the cells, colour = share of the row (recall per class)."""
    import numpy as np

    plt = pyplot()

    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(3.5, 0.7 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=list(labels))
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax, label="share of the true label's texts")
    if title:
        ax.set_title(title)
    save_png(fig, path, dpi=110)
