"""The report's figures (PNG, matplotlib's Agg backend). Each function takes a tidy table and a path, draws one
figure and writes it atomically; none computes anything the tables do not already hold."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthbench.data.io import pyplot, save_png

DPI = 120


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _plain_numbers() -> Any:
    from matplotlib.ticker import ScalarFormatter

    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    return formatter


def _save(fig: Any, path: Path) -> None:
    save_png(fig, path, dpi=DPI)


def _series_label(condition: str, backbone: str, n_backbones: int) -> str:
    return condition if n_backbones == 1 else f"{condition} / {backbone}"


def training_curves_figure(curves: pd.DataFrame, task: str, path: Path) -> None:
    """Validation Macro-F1 (left) and train loss (right) against epoch, one line per condition (and
    backbone), for one task. ``curves``: :func:`synthbench.analysis.curves.curves_frame` rows, seeds averaged."""
    plt = pyplot()
    rows = curves[curves["task"] == task]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    n_backbones = rows["backbone"].nunique()
    for (condition, backbone), group in rows.groupby(["condition", "backbone"], sort=False):
        group = group.sort_values("epoch")
        label = _series_label(condition, backbone, n_backbones)
        left.plot(group["epoch"], group["val_macro_f1"], marker="o", label=label)
        right.plot(group["epoch"], group["train_loss"], marker="o", label=label)
    for ax in (left, right):
        ax.xaxis.set_major_locator(_integer_ticks())
    left.set(xlabel="epoch", ylabel="validation Macro-F1", title=f"{task}: validation Macro-F1")
    right.set(xlabel="epoch", ylabel="train loss (cross-entropy)", title=f"{task}: train loss")
    left.legend(fontsize=8)
    _save(fig, path)


def agreement_figure(curve: pd.DataFrame, trends: pd.DataFrame, task: str, backbone: str, path: Path) -> None:
    """The paper's Figure 2 for one task and backbone: accuracy on the instances with agreement ≥ γ against
    γ, one line per condition, R² of each condition's linear fit in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    r2 = trends.set_index("condition")["r2"].to_dict()
    for condition, group in curve.dropna(subset=["accuracy"]).groupby("condition", sort=False):
        fit = r2.get(condition, np.nan)
        label = condition if np.isnan(fit) else f"{condition} (R² = {fit:.2f})"
        ax.plot(group["threshold"], group["accuracy"], marker="o", label=label)
    ax.set(
        xlabel="annotator agreement threshold γ",
        ylabel="accuracy on texts with agreement ≥ γ",
        title=f"{task} ({backbone}): accuracy vs agreement",
    )
    ax.legend(fontsize=8)
    _save(fig, path)


def gap_scatter_figure(gaps: pd.DataFrame, measure: str, path: Path) -> None:
    """Macro-F1 gap to real (points) against task subjectivity, one colour per condition (and backbone),
    each point labelled with its task. ``gaps``: :func:`synthbench.analysis.tasklevel.gap_frame` rows."""
    plt = pyplot()
    gaps = gaps.dropna(subset=[measure, "macro_f1_gap_pts"])
    fig, ax = plt.subplots(figsize=(6, 4))
    n_backbones = gaps["backbone"].nunique()
    for (condition, backbone), group in gaps.groupby(["condition", "backbone"], sort=False):
        ax.scatter(
            group[measure], group["macro_f1_gap_pts"], label=_series_label(condition, backbone, n_backbones)
        )
    for task, group in gaps.groupby("task", sort=False):  # one name per task, beside its highest point
        top = group.loc[group["macro_f1_gap_pts"].idxmax()]
        ax.annotate(
            str(task),
            (top[measure], top["macro_f1_gap_pts"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.axhline(0.0, color="grey", linewidth=0.8)
    if measure == "stars":
        ax.set_xlim(0.5, 5.5)
        ax.xaxis.set_major_locator(_integer_ticks())
    xlabel = "task subjectivity (Bradley–Terry score)" if measure == "score" else "task subjectivity (stars)"
    ax.set(
        xlabel=xlabel, ylabel="Macro-F1 gap to real (points)", title="Synthetic-vs-real gap by subjectivity"
    )
    ax.legend(fontsize=8)
    _save(fig, path)


def diversity_figure(diversity: pd.DataFrame, path: Path, sets: Sequence[str]) -> None:
    """Remote-Clique (left) and Chamfer (right) per task (groups) and text set (bars).
    ``diversity``: rows with ``task``, ``set``, ``remote_clique``, ``chamfer``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, title in ((axes[0], "remote_clique", "Remote-Clique"), (axes[1], "chamfer", "Chamfer")):
        pivot = diversity.pivot(index="task", columns="set", values=metric).reindex(columns=list(sets))
        pivot.plot.bar(ax=ax, rot=0, width=0.8)
        ax.set(ylabel="mean cosine distance (higher = more diverse)", title=title, xlabel="")
        ax.legend(fontsize=8)
    _save(fig, path)


def learning_curve_figure(
    points: pd.DataFrame, worth: pd.DataFrame, task: str, backbone: str, path: Path
) -> None:
    """Test Macro-F1 against real training rows (log x) for one task and backbone, with each other condition's
    Macro-F1 as a dashed horizontal line. ``points``: :func:`synthbench.analysis.learning_curve.learning_curve_frame`
    rows; ``worth``: :func:`~synthbench.analysis.learning_curve.worth_frame` rows."""
    from matplotlib.ticker import NullLocator

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    points = points.sort_values("real_rows")
    ax.plot(
        points["real_rows"],
        points["macro_f1"],
        marker="o",
        color="black",
        label="real (subsamples, then all)",
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(worth.itertuples(index=False)):
        ax.axhline(row.macro_f1, linestyle="--", color=colours[i % len(colours)], label=str(row.condition))
    ax.set_xscale("log")
    ax.set_xticks(points["real_rows"].tolist())  # ticks at the measured sizes only: log minor labels collide
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(_plain_numbers())
    values = [*points["macro_f1"], *worth["macro_f1"]]
    pad = 0.05 * max(
        max(values) - min(values), 0.02
    )  # horizontal lines do not widen the y range by themselves
    ax.set_ylim(min(values) - pad, max(values) + pad)
    ax.set(
        xlabel="real training rows (log scale)",
        ylabel="test Macro-F1",
        title=f"{task} ({backbone}): what synthetic data is worth",
    )
    ax.legend(fontsize=8)
    _save(fig, path)
