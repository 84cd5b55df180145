"""The report's sections, as blocks (:mod:`synthbench.analysis.report`), from the analyses' results.

:class:`AnalysisResults` is the contract between the stage (which computes) and the report (which only words and
lays out): every number the report prints is in it, and ``as_dict`` is what ``reports/analysis.json`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthbench.analysis.learning_curve import describe_worth
from synthbench.analysis.pilot_section import pilot_section
from synthbench.analysis.report import Block, Bullets, Figure, Heading, Paragraph, Table
from synthbench.analysis.summary import table_one
from synthbench.analysis.tasklevel import ALPHA, describe_correlation
from synthbench.analysis.uncertainty import METHOD_NOTE
from synthbench.analysis.verdict import mode_name

SECTIONS = (
    "Verdict",
    "Table 1: real vs synthetic training data",
    "Task subjectivity and the synthetic-vs-real gap",
    "Instance-level subjectivity",
    "Diversity and closeness to real data",
    "How many real examples is a synthetic set worth",
    "Training curves",
    "How these numbers were made",
)


def _empty() -> pd.DataFrame:
    return pd.DataFrame()


@dataclass
class AnalysisResults:
    """Everything the analyses found. Frames are tidy (one row per observation); fractions in [0, 1] unless a
    column name ends in ``_pts`` (percentage points)."""

    tasks: list[str]
    modes: list[str]
    conditions: list[str]
    backbones: list[str]
    table: pd.DataFrame  # summary.summary_table
    subjectivity: pd.DataFrame = field(default_factory=_empty)  # tasklevel.task_subjectivity
    measure: str = "stars"
    comparisons_path: str | None = None
    gaps: pd.DataFrame = field(default_factory=_empty)  # tasklevel.gap_frame
    correlations: list[dict[str, Any]] = field(default_factory=list)  # tasklevel.gap_correlations
    diversity: pd.DataFrame = field(default_factory=_empty)  # embeddings.diversity_table + task
    diversity_notes: list[str] = field(default_factory=list)
    embedding_cache: dict[str, int] = field(default_factory=dict)
    instance_curves: pd.DataFrame = field(
        default_factory=_empty
    )  # instance.agreement_curves + task, backbone
    instance_trends: pd.DataFrame = field(default_factory=_empty)
    instance_notes: list[str] = field(default_factory=list)
    curves: pd.DataFrame = field(default_factory=_empty)  # curves.curves_frame, seeds averaged
    learning_curve: pd.DataFrame = field(default_factory=_empty)  # learning_curve.learning_curve_frame
    worth: pd.DataFrame = field(default_factory=_empty)  # learning_curve.worth_frame
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    review_blocks: list[Block] = field(default_factory=list)  # review_section: a person's verdicts, if any
    pilots: list[dict[str, Any]] = field(default_factory=list)  # pilot_section.pilot_rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN left for the writer to turn into null)."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return frame.astype(object).where(frame.notna(), None).to_dict("records") if len(frame) else []

        return {
            "tasks": self.tasks,
            "conditions": self.conditions,
            "backbones": self.backbones,
            "table": records(self.table),
            "verdicts": self.verdicts,
            "pilots": self.pilots,
            "subjectivity": {
                "measure": self.measure,
                "comparisons_csv": self.comparisons_path,
                "tasks": records(self.subjectivity),
                "gap_correlation": self.correlations,
            },
            "diversity": {
                "sets": records(self.diversity),
                "notes": self.diversity_notes,
                "embedding_cache": self.embedding_cache,
            },
            "instance_level": {
                "curves": records(self.instance_curves),
                "trends": records(self.instance_trends),
                "notes": self.instance_notes,
            },
            "training_curves": records(self.curves),
            "learning_curve": {
                "points": records(self.learning_curve),
                "real_equivalent": records(self.worth),
            },
            "figures": {key: path.name for key, path in self.figures.items()},
        }


def _number(value: Any, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _figure(results: AnalysisResults, key: str, caption: str) -> list[Block]:
    return [Figure(results.figures[key], caption)] if key in results.figures else []


def _verdict(results: AnalysisResults) -> list[Block]:
    items = [f"{v['task']} ({v['backbone']}): {v['sentence']}" for v in results.verdicts]
    return [Heading(SECTIONS[0]), Bullets(items or ["No evaluations to judge."])]


def _table_one(results: AnalysisResults) -> list[Block]:
    n_seeds = int(results.table["n_seeds"].max()) if len(results.table) else 0
    spread = (
        f"mean ± standard deviation over {n_seeds} training seeds"
        if n_seeds > 1
        else "one training seed per condition, so no spread is shown: differences of a point or two may be "
        "noise"
    )
    header, rows = table_one(results.table, results.conditions)
    return [
        Heading(SECTIONS[1]),
        Paragraph(
            f"Macro-F1 and accuracy (%) of each classifier on its task's real test set ({spread}). "
            "Gap = condition − real, in Macro-F1 points."
        ),
        Table(header, rows, numeric=[False, False] + [True] * (len(header) - 2)),
        *_figure(results, "summary", "Macro-F1 on the real test set by task and training data."),
    ]


def _task_level(results: AnalysisResults) -> list[Block]:
    if results.comparisons_path:
        source = (
            f"Task subjectivity was fitted with a Bradley–Terry model to the pairwise comparisons in "
            f"{results.comparisons_path}; stars are equal-count bins of its ranking (tasks absent from "
            "the comparisons keep their registry stars)."
        )
    else:
        source = (
            "Task subjectivity is the star level in each task's spec (1 = objective … 5 = subjective); "
            "give pairwise comparisons in params analysis.comparisons_csv to fit it instead."
        )
    rows = [
        [
            str(r.task),
            str(r.stars),
            _number(r.score),
            "—" if pd.isna(r["rank"]) else str(int(r["rank"])),
            str(r.source),
        ]
        for _, r in results.subjectivity.iterrows()
    ]
    correlations = [describe_correlation(row, results.measure) for row in results.correlations]
    return [
        Heading(SECTIONS[2]),
        Paragraph(source),
        Table(
            ["task", "stars", "Bradley–Terry score", "rank", "source"],
            rows,
            numeric=(False, True, True, True, False),
        ),
        Paragraph(
            "Does the synthetic-vs-real gap widen with subjectivity, as the paper found? "
            "(Spearman ρ < 0 means more subjective tasks lose more Macro-F1; a direction is named only at "
            f"p < {ALPHA:g}, and with few tasks only a strong relation can reach it.)"
        ),
        Bullets(correlations or ["No synthetic condition to correlate."]),
        *_figure(results, "gap", "Macro-F1 gap to real against task subjectivity."),
    ]


def _instance_level(results: AnalysisResults) -> list[Block]:
    blocks: list[Block] = [
        Heading(SECTIONS[3]),
        Paragraph(
            "Agreement a_i of a test text = share of its annotators who chose the most popular label. "
            "Each curve scores a classifier only on the texts with a_i ≥ γ; a steep rise means its errors "
            "sit on the ambiguous texts. The paper found synthetic-trained models rise more steeply."
        ),
    ]
    curves, trends = results.instance_curves, results.instance_trends
    for (task, backbone), curve in curves.groupby(["task", "backbone"], sort=False) if len(curves) else []:
        trend = trends[(trends["task"] == task) & (trends["backbone"] == backbone)]
        coverage = curve["coverage"].max()
        thresholds = sorted(curve["threshold"].unique())
        header = (
            ["γ", "n"]
            + [f"{c} accuracy" for c in results.conditions]
            + [f"{c} Macro-F1" for c in results.conditions]
        )
        rows = []
        for gamma in thresholds:
            at = curve[curve["threshold"] == gamma].set_index("condition")
            cells = [f"{gamma:.2f}", str(int(at["n"].iloc[0]))]
            for metric in ("accuracy", "macro_f1"):
                cells += [_number(at[metric].get(c), 3) if c in at.index else "—" for c in results.conditions]
            rows.append(cells)
        trend_rows = [
            [
                str(r.condition),
                _number(r.slope, 3, signed=True),
                _number(r.r2),
                _number(r.spearman_rho, 2, signed=True),
                str(r.n),
                r.note or "",
            ]
            for r in trend.itertuples(index=False)
        ]
        blocks += [
            Heading(f"{task} ({backbone})", level=3),
            Paragraph(
                f"{100 * coverage:.0f}% of the test texts matched the annotations file by text. "
                + _steeper(trend)
            ),
            Table(header, rows),
            Table(
                ["condition", "slope (accuracy per unit γ)", "R²", "Spearman ρ", "thresholds", "note"],
                trend_rows,
                numeric=(False, True, True, True, True, False),
            ),
            *_figure(
                results, f"agreement:{task}:{backbone}", f"{task}: accuracy against agreement threshold γ."
            ),
        ]
    if results.instance_notes:
        blocks.append(Bullets(results.instance_notes))
    return blocks


def _steeper(trend: pd.DataFrame) -> str:
    """One sentence comparing each synthetic condition's accuracy-vs-γ slope with the real condition's."""
    slopes = trend.set_index("condition")["slope"].dropna()
    if "real" not in slopes.index or len(slopes) < 2:
        return "Too few thresholds with data to compare slopes."
    parts = [
        f"{condition} {slope:+.3f} ({'steeper' if slope > slopes['real'] else 'not steeper'})"
        for condition, slope in slopes.items()
        if condition != "real"
    ]
    return (
        f"Accuracy-vs-γ slope of real {slopes['real']:+.3f}; "
        + ", ".join(parts)
        + " (the paper found synthetic-trained models steeper)."
    )


def _diversity(results: AnalysisResults) -> list[Block]:
    blocks: list[Block] = [
        Heading(SECTIONS[4]),
        Paragraph(
            "Sentence embeddings (all-MiniLM-L6-v2 unless params analysis.embedding_model says otherwise) "
            "of each training set. Remote-Clique = mean cosine distance to all other texts; Chamfer = mean "
            "distance to the nearest other text (higher = more diverse). Closeness = for each real text, "
            "the mean of its 5 highest cosine similarities to the set (higher = closer to real data). All "
            "sets of a task are subsampled to the same size first, because Chamfer and closeness depend "
            "on set size."
        ),
    ]
    if len(results.diversity):
        rows = [
            [
                str(r.task),
                str(r.set),
                f"{r.n_used} / {r.n_total}",
                _number(r.remote_clique),
                f"{r.remote_clique_vs_real:.2f}×",
                _number(r.chamfer),
                f"{r.chamfer_vs_real:.2f}×",
                _number(r.closeness),
            ]
            for r in results.diversity.itertuples(index=False)
        ]
        blocks += [
            Table(
                [
                    "task",
                    "set",
                    "texts used / total",
                    "Remote-Clique",
                    "vs real",
                    "Chamfer",
                    "vs real",
                    "closeness to real",
                ],
                rows,
                numeric=(False, False, True, True, True, True, True, True),
            ),
            *_figure(results, "diversity", "Diversity of the real and synthetic training sets."),
        ]
    if results.diversity_notes:
        blocks.append(Bullets(results.diversity_notes))
    return blocks


def _learning_curve(results: AnalysisResults) -> list[Block]:
    blocks: list[Block] = [Heading(SECTIONS[5])]
    curve = results.learning_curve
    if not len(curve) or curve.groupby(["task", "backbone"]).size().max() < 2:
        return [
            *blocks,
            Paragraph(
                "No real-data learning curve: list sizes under params train.learning_curve_sizes "
                "(conditions real_n<N>) to see how many real examples each synthetic set is "
                "worth."
            ),
        ]
    blocks.append(
        Paragraph(
            "Test Macro-F1 of models trained on nested, stratified subsamples of the real training data (conditions "
            "real_n<N>, and all of it), and where each synthetic or mixed condition's Macro-F1 falls on that curve "
            "(interpolated in log rows on the curve's running maximum; < and > mark scores outside the measured "
            "range)."
        )
    )
    rows = [
        [
            str(r.task),
            str(r.backbone),
            str(r.condition),
            "—" if pd.isna(r.rows) else str(int(r.rows)),
            _number(r.macro_f1),
            describe_worth(r._asdict()),
        ]
        for r in results.worth.itertuples(index=False)
    ]
    if rows:
        blocks.append(
            Table(
                ["task", "backbone", "condition", "its rows", "Macro-F1", "worth (real rows)"],
                rows,
                numeric=(False, False, False, True, True, True),
            )
        )
    for key in [key for key in results.figures if key.startswith("learning:")]:
        _, task, backbone = key.split(":", 2)
        blocks += _figure(
            results,
            key,
            f"{task} ({backbone}): test Macro-F1 against real training rows; "
            "dashed lines: the other conditions.",
        )
    return blocks


def _training(results: AnalysisResults) -> list[Block]:
    blocks: list[Block] = [Heading(SECTIONS[6])]
    keys = [key for key in results.figures if key.startswith("training:")]
    if not keys:
        return [*blocks, Paragraph("No training histories (models/*/*/*/training.json) were found.")]
    blocks.append(
        Paragraph(
            "Validation Macro-F1 (on a held-out share of each condition's own training data, "
            "so not comparable across conditions) and train loss per epoch."
        )
    )
    for key in keys:
        task = key.split(":", 1)[1]
        blocks += _figure(results, key, f"{task}: validation Macro-F1 and train loss per epoch.")
    return blocks


def _method(modes: list[str]) -> list[Block]:
    baseline = mode_name(modes[0]) if modes else "zero-shot"
    return [
        Heading(SECTIONS[7]),
        Bullets(
            [
                "Macro-F1 = unweighted mean of per-class F1 (f1_score(average='macro')); accuracy = share correct; "
                "both on the task's real test set, whatever the training data.",
                "Share of real = Macro-F1(synthetic) / Macro-F1(real). Gap closed by a mode = "
                f"(mode − {baseline}) / (real − {baseline}), {baseline} being the first mode (the baseline).",
                "Diversity ratio = Remote-Clique(synthetic) / Remote-Clique(real), on size-matched samples.",
                METHOD_NOTE,
                "Every number here is also in reports/analysis.json and reports/tables/*.csv; the DVC plot data is "
                "under reports/plots/.",
            ]
        ),
    ]


def report_blocks(results: AnalysisResults) -> list[Block]:
    """The whole report: a title, a one-paragraph scope, then :data:`SECTIONS` in order."""
    scope = (
        f"Classifiers trained on real data and on LLM-generated data ({', '.join(results.modes)}), each "
        f"scored on the task's real test set. Tasks: {', '.join(results.tasks)}. Backbones: "
        f"{', '.join(results.backbones)}."
    )
    return [
        Heading("synthbench report", level=1),
        Paragraph(scope),
        *_verdict(results),
        *_table_one(results),
        *_task_level(results),
        *_instance_level(results),
        *_diversity(results),
        *_learning_curve(results),
        *_training(results),
        *results.review_blocks,
        *pilot_section(results.pilots),
        *_method(list(results.modes)),
    ]
