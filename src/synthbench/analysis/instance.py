"""Instance-level subjectivity wiring: an annotations file + each condition's test predictions → accuracy and
Macro-F1 on the instances whose annotator agreement a_i reaches γ, for a grid of γ (the paper's Figure 2), and
a linear fit (R²) and Spearman ρ of accuracy against γ per condition.

The computations are :mod:`synthbench.analysis.subjectivity`'s; this module reads the annotations file, joins it
to predictions by text (whitespace-normalised, as ``prepare`` writes test texts) and tabulates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthbench.analysis.subjectivity import as_agreement, instance_agreement, threshold_curve, trend
from synthbench.data.io import read_table
from synthbench.data.sources import normalise_text
from synthbench.errors import DataError


def read_annotations(path: str | os.PathLike[str]) -> pd.Series:
    """Agreement a_i per test text from a multi-annotator file, in one of three layouts:

    - precomputed: columns ``text`` and ``agreement`` (a fraction in [0, 1]; other columns ignored);
    - long: columns ``text``, ``annotator``, ``label``, one row per vote;
    - wide: column ``text`` and one ``annotator_*`` column per annotator holding its label (empty = no vote).

    a_i = votes for the most popular label / number of votes. Texts are whitespace-normalised; a text listed
    twice keeps its first row (precomputed) or pools its votes (long, wide).

    Returns:
        float64 Series indexed by normalised text, values in [0, 1], named ``agreement``.

    Raises:
        DataError: missing file, unknown layout, or agreement values outside [0, 1] (message names the file).
    """
    source = Path(path)
    frame = read_table(source, "fix params analysis.annotations", dtype={"text": str}, empty_is_missing=True)
    if "text" not in frame.columns:
        raise DataError(f"{source}: no 'text' column (found {list(frame.columns)})")
    frame = frame.assign(text=frame["text"].astype(str).map(normalise_text))
    wide = [column for column in frame.columns if str(column).startswith("annotator_")]
    try:
        if "agreement" in frame.columns:
            first = frame.drop_duplicates("text", keep="first")
            values = as_agreement(first["agreement"].to_numpy(dtype=np.float64))
            return pd.Series(values, index=pd.Index(first["text"], name="text"), name="agreement")
        if {"annotator", "label"} <= set(frame.columns):
            votes = frame.dropna(subset=["label"]).groupby("text", sort=False)["label"].agg(list)
        elif wide:
            melted = frame.melt(id_vars="text", value_vars=wide, value_name="label").dropna(subset=["label"])
            votes = melted.groupby("text", sort=False)["label"].agg(list)
        else:
            raise DataError(
                f"{source}: unknown annotations layout (columns {list(frame.columns)}); give text + agreement, "
                "text,annotator,label, or text + annotator_* columns"
            )
        agreement = instance_agreement([[str(label) for label in row] for row in votes])
    except ValueError as exc:
        raise DataError(f"{source}: {exc}") from None
    return pd.Series(agreement, index=pd.Index(votes.index, name="text"), name="agreement")


def join_agreement(predictions: Sequence[Mapping[str, Any]], agreement: pd.Series) -> pd.DataFrame:
    """Attach a_i to prediction rows (``text``, ``label``, ``prediction``) by normalised text.

    Returns:
        Rows that matched, columns ``text``, ``label``, ``prediction``, ``agreement``; unmatched texts dropped.
    """
    frame = pd.DataFrame(
        [
            {"text": normalise_text(str(row["text"])), "label": row["label"], "prediction": row["prediction"]}
            for row in predictions
        ],
        columns=["text", "label", "prediction"],
    )
    joined = frame.merge(agreement.rename("agreement"), left_on="text", right_index=True, how="inner")
    return joined.reset_index(drop=True)


def default_thresholds(agreement: Sequence[float] | np.ndarray) -> list[float]:
    """Every distinct agreement value, ascending: each γ then keeps one more agreement bucket out. Values are
    used exactly as they occur (not rounded), so an a_i of 2/3 passes the γ made from it."""
    return [float(value) for value in np.unique(np.asarray(agreement, dtype=np.float64))]


def agreement_curves(
    predictions: Mapping[str, Sequence[Mapping[str, Any]]],
    agreement: pd.Series,
    thresholds: Sequence[float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Figure-2 curves and their trends for one task and backbone.

    Args:
        predictions: condition → its ``predictions.jsonl`` rows (``text``, ``label``, ``prediction``).
        agreement: :func:`read_annotations` output.
        thresholds: γ values; None for :func:`default_thresholds` of the matched instances.

    Returns:
        (curve, trends). ``curve``: one row per (condition, γ): ``condition``, ``threshold``, ``n`` (instances
        with a_i ≥ γ), ``accuracy``, ``macro_f1`` (fractions; NaN when n = 0), ``coverage`` (matched test
        instances / all test instances). ``trends``: one row per condition: ``condition``, ``slope``
        (accuracy per unit of γ), ``intercept``, ``r2``, ``spearman_rho``, ``spearman_p``, ``n`` (thresholds
        used), ``note`` (why no trend, else empty).
    """
    curve_rows: list[dict[str, Any]] = []
    trend_rows: list[dict[str, Any]] = []
    for condition, rows in predictions.items():
        joined = join_agreement(rows, agreement)
        coverage = len(joined) / len(rows) if len(rows) else 0.0
        grid = list(thresholds) if thresholds is not None else default_thresholds(joined["agreement"])
        points = (
            threshold_curve(
                joined["label"].tolist(), joined["prediction"].tolist(), joined["agreement"].to_numpy(), grid
            )
            if len(joined)
            else []
        )
        for point in points:
            curve_rows.append({"condition": condition, **point, "coverage": coverage})
        usable = [p for p in points if p["accuracy"] is not None]
        base: dict[str, Any] = {
            "condition": condition,
            "slope": np.nan,
            "intercept": np.nan,
            "r2": np.nan,
            "spearman_rho": np.nan,
            "spearman_p": np.nan,
            "n": len(usable),
            "note": "",
        }
        if not len(joined):
            base["note"] = "no test text matched the annotations file"
        else:
            try:
                base.update(trend([p["threshold"] for p in usable], [p["accuracy"] for p in usable]))
            except ValueError as exc:
                base["note"] = f"no trend: {exc}"
        trend_rows.append(base)
    curve = pd.DataFrame(
        curve_rows, columns=["condition", "threshold", "n", "accuracy", "macro_f1", "coverage"]
    )
    curve[["accuracy", "macro_f1"]] = curve[["accuracy", "macro_f1"]].astype(float)
    trends = pd.DataFrame(
        trend_rows,
        columns=["condition", "slope", "intercept", "r2", "spearman_rho", "spearman_p", "n", "note"],
    )
    return curve, trends
