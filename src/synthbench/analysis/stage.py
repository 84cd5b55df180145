"""Analyze stage: what the earlier stages wrote → the report a practitioner reads.

Reads ``results/*/*/*/{metrics.json,predictions.jsonl}``, ``models/*/*/*/training.json``, ``data/real/*/train.jsonl``,
``data/synthetic/*/*.jsonl`` and the optional files named in params ``analysis``; writes under ``reports/``:

- ``summary.{md,csv,png}``: Table 1 in long form (one row per task, backbone, condition);
- ``report.md`` and the self-contained ``report.html``; figures as PNG under ``figures/``;
- ``analysis.json``: every number of the report; ``tables/*.csv``: the same as long tables;
- ``plots/``: wide CSVs for ``dvc plots`` (one line per condition: ``val_macro_f1/``, ``train_loss/``,
  ``agreement_curve/``, one file per task and backbone; ``gap_vs_subjectivity.csv``; ``learning_curve/``: test
  Macro-F1 against real rows).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from synthbench.analysis import figures
from synthbench.analysis.curves import curves_frame, mean_over_seeds, wide_table
from synthbench.analysis.embeddings import cached_embeddings, diversity_table
from synthbench.analysis.instance import agreement_curves, read_annotations
from synthbench.analysis.learning_curve import CURVE_COLUMNS, learning_curve_frame, worth_frame
from synthbench.analysis.pilot_section import pilot_rows
from synthbench.analysis.report import to_html, to_markdown
from synthbench.analysis.review_section import review_section
from synthbench.analysis.sections import AnalysisResults, report_blocks
from synthbench.analysis.settings import AnalysisSettings
from synthbench.analysis.subjectivity import read_comparisons_csv
from synthbench.analysis.summary import bar_chart, summary_table
from synthbench.analysis.summary import to_markdown as summary_markdown
from synthbench.analysis.tasklevel import gap_correlations, gap_frame, subjectivity_measure, task_subjectivity
from synthbench.analysis.uncertainty import verdict_evidence
from synthbench.analysis.verdict import verdict_numbers, verdict_sentence
from synthbench.data.io import atomic_open, read_jsonl, write_json, write_text
from synthbench.layout import LAYOUT, Layout
from synthbench.records import EvaluationMetrics, TrainingManifest
from synthbench.tasks import TaskSpec


@dataclass(frozen=True)
class Study:
    """What the analyze stage declares in ``dvc.yaml``: the study grid, the sampling seed, the ``analysis``
    section and each task's spec (its snapshot from prepare)."""

    tasks: list[str]
    modes: list[str]
    conditions: list[str]
    backbones: list[str]
    seed: int
    specs: dict[str, TaskSpec]
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)


def run_analyze(params: Study, layout: Layout = LAYOUT) -> dict[str, Any]:
    """Run every analysis and write ``reports/`` (see the module docstring). Returns counts for the CLI."""
    settings, root = params.settings, layout.root
    reports = layout.reports
    for owned in ("figures", "plots", "tables"):  # this stage's outputs only: no stale file survives a re-run
        shutil.rmtree(reports / owned, ignore_errors=True)

    metrics = [
        EvaluationMetrics.read(layout.metrics(task, condition, backbone))
        for task in params.tasks
        for condition in params.conditions
        for backbone in params.backbones
    ]
    table = summary_table(metrics)
    header = (
        "# synthbench summary\n\nMacro-F1 and accuracy (%) on each task's real test set; gap = condition − real, "
        "in Macro-F1 points.\n\n"
    )
    write_text(reports / "summary.md", header + summary_markdown(table))
    with atomic_open(reports / "summary.csv") as handle:
        table.to_csv(handle, index=False)
    bar_chart(table, reports / "summary.png")

    results = AnalysisResults(
        tasks=list(params.tasks),
        modes=list(params.modes),
        conditions=list(params.conditions),
        backbones=list(params.backbones),
        table=table,
    )
    _task_level(results, params, settings, root)
    _diversity(results, params, settings, layout)
    _instance_level(results, params, settings, layout)
    trainings = _read_trainings(params, layout)
    results.curves = _training_curves(trainings)
    results.learning_curve = learning_curve_frame(table, trainings)
    results.worth = worth_frame(table, results.learning_curve, trainings)
    _verdicts(results, {(m.task, m.condition, m.backbone): m for m in metrics}, layout, params.seed)
    results.review_blocks = review_section(params.tasks, params.modes, layout)  # a person's verdicts, if any
    results.pilots = pilot_rows(
        params.tasks, table, layout
    )  # each pilot's prediction next to the study's gap

    _write_figures(results, reports / "figures")
    _write_plot_data(results, reports / "plots")
    _write_tables(results, reports / "tables")
    write_json(reports / "analysis.json", _to_json(results.as_dict()))
    blocks = report_blocks(results)
    write_text(reports / "report.md", to_markdown(blocks, base=reports))
    write_text(reports / "report.html", to_html(blocks, title="synthbench report"))
    return {"rows": len(table), "figures": len(results.figures), "report": str(reports / "report.md")}


# ----------------------------------------------------------------------------------------------------
# Inputs → results
# ----------------------------------------------------------------------------------------------------


def _task_level(results: AnalysisResults, params: Study, settings: AnalysisSettings, root: Path) -> None:
    registry = {task: params.specs[task].subjectivity for task in params.tasks}
    comparisons = None
    if settings.comparisons_csv:
        results.comparisons_path = str(settings.comparisons_csv)
        comparisons = read_comparisons_csv(settings.resolve(settings.comparisons_csv, root))
    results.subjectivity = task_subjectivity(params.tasks, registry, comparisons)
    results.measure = subjectivity_measure(results.subjectivity)
    results.gaps = gap_frame(results.table, results.subjectivity)
    results.correlations = gap_correlations(results.gaps, results.measure)


def _diversity(results: AnalysisResults, params: Study, settings: AnalysisSettings, layout: Layout) -> None:
    if not settings.diversity:
        results.diversity_notes.append("Diversity was switched off (params analysis.diversity: false).")
        return
    frames, cached, embedded = [], 0, 0
    for task in params.tasks:
        paths = {"real": layout.real(task, "train")} | {
            mode: layout.synthetic(task, mode) for mode in params.modes
        }
        missing = [name for name, path in paths.items() if not path.exists()]
        if "real" in missing:
            results.diversity_notes.append(
                f"{task}: no real train set at {paths['real']}; diversity skipped."
            )
            continue
        if missing:
            results.diversity_notes.append(f"{task}: no synthetic file for {', '.join(missing)}; left out.")
        sets = {}
        for name, path in paths.items():
            if name in missing:
                continue
            sets[name], hit = cached_embeddings(path, layout.root, settings.embedding_model)
            cached, embedded = cached + hit, embedded + (not hit)
        frames.append(diversity_table(sets, seed=params.seed).assign(task=task))
    results.embedding_cache = {"cached": cached, "embedded": embedded}
    if frames:
        frame = pd.concat(frames, ignore_index=True)
        results.diversity = frame[["task", *[c for c in frame.columns if c != "task"]]]


def _instance_level(
    results: AnalysisResults, params: Study, settings: AnalysisSettings, layout: Layout
) -> None:
    if not settings.annotations:
        results.instance_notes.append(
            "No annotations configured: give a task's multi-annotator file under params analysis.annotations "
            "(e.g. financial_phrasebank: ../shared/data/financial_phrasebank/annotations.csv)."
        )
        return
    curves, trends = [], []
    for task, path in settings.annotations.items():
        if task not in params.tasks:
            results.instance_notes.append(
                f"{task}: has annotations but is not among the study's tasks; skipped."
            )
            continue
        agreement = read_annotations(settings.resolve(path, layout.root))
        for backbone in params.backbones:
            predictions = {}
            for condition in params.conditions:
                file = layout.predictions(task, condition, backbone)
                if file.exists():
                    predictions[condition] = read_jsonl(file)
                else:
                    results.instance_notes.append(f"{task}/{condition}/{backbone}: no predictions at {file}.")
            curve, trend = agreement_curves(predictions, agreement, settings.thresholds)
            curves.append(curve.assign(task=task, backbone=backbone))
            trends.append(trend.assign(task=task, backbone=backbone))
    if curves:
        results.instance_curves = pd.concat(curves, ignore_index=True)
        results.instance_trends = pd.concat(trends, ignore_index=True)


def _read_trainings(params: Study, layout: Layout) -> dict[tuple[str, str, str], TrainingManifest]:
    return {
        (task, condition, backbone): TrainingManifest.read(
            layout.training_manifest(task, condition, backbone)
        )
        for task in params.tasks
        for condition in params.conditions
        for backbone in params.backbones
    }


def _training_curves(trainings: dict[tuple[str, str, str], TrainingManifest]) -> pd.DataFrame:
    frame = curves_frame(trainings)
    return mean_over_seeds(
        frame,
        ["task", "condition", "backbone", "epoch"],
        ["train_loss", "val_loss", "val_macro_f1", "val_accuracy"],
    )


def _verdicts(
    results: AnalysisResults,
    metrics: dict[tuple[str, str, str], EvaluationMetrics],
    layout: Layout,
    seed: int,
) -> None:
    """One verdict per (task, backbone), its certainty judged from the gap intervals and the real baseline's
    distance from chance (:mod:`synthbench.analysis.uncertainty`)."""
    for (task, backbone), group in results.table.groupby(["task", "backbone"], sort=False):
        macro_f1 = dict(zip(group["condition"], group["macro_f1"], strict=True))
        ratios = None
        if not results.diversity.empty:
            rows = results.diversity[results.diversity["task"] == task]
            ratios = dict(zip(rows["set"], rows["remote_clique_vs_real"], strict=True))
        accuracy = dict(zip(group["condition"], group["accuracy"], strict=True))
        majority = group["majority_accuracy"].dropna()
        evaluated = {
            condition: metrics[(task, condition, backbone)]
            for condition in group["condition"]
            if (task, condition, backbone) in metrics
        }
        numbers = verdict_numbers(
            macro_f1,
            results.modes,
            ratios,
            accuracy=accuracy,
            majority_accuracy=float(majority.iloc[0]) if len(majority) else None,
            **verdict_evidence(task, backbone, results.modes, evaluated, layout, seed),
        )
        n_seeds = int(group["n_seeds"].min())
        n_test = group["n_test"].dropna()
        caveat = (
            f"{'one training seed' if n_seeds == 1 else f'{n_seeds} seeds'}, "
            f"{int(n_test.iloc[0]) if len(n_test) else '?'} test texts"
        )
        results.verdicts.append(
            {
                "task": task,
                "backbone": backbone,
                **numbers,
                "sentence": verdict_sentence(numbers, macro_f1, caveat),
            }
        )


# ----------------------------------------------------------------------------------------------------
# Results → files
# ----------------------------------------------------------------------------------------------------


def _write_figures(results: AnalysisResults, folder: Path) -> None:
    shown = {"summary": folder / "macro_f1.png"}
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder.parent / "summary.png", shown["summary"])  # the report's copy of Table 1's chart
    if not results.gaps.empty:
        shown["gap"] = folder / "gap_vs_subjectivity.png"
        figures.gap_scatter_figure(results.gaps, results.measure, shown["gap"])
    if not results.diversity.empty:
        shown["diversity"] = folder / "diversity.png"
        figures.diversity_figure(results.diversity, shown["diversity"], ["real", *results.modes])
    for (task, backbone), curve in _groups(results.instance_curves, ["task", "backbone"]):
        trends = results.instance_trends
        trend = trends[(trends["task"] == task) & (trends["backbone"] == backbone)]
        shown[f"agreement:{task}:{backbone}"] = folder / f"agreement_{task}_{backbone}.png"
        figures.agreement_figure(curve, trend, task, backbone, shown[f"agreement:{task}:{backbone}"])
    for (task, backbone), points in _groups(results.learning_curve, ["task", "backbone"]):
        if len(points) >= 2:
            worth = results.worth
            shown[f"learning:{task}:{backbone}"] = folder / f"learning_curve_{task}_{backbone}.png"
            figures.learning_curve_figure(
                points,
                worth[(worth["task"] == task) & (worth["backbone"] == backbone)],
                task,
                backbone,
                shown[f"learning:{task}:{backbone}"],
            )
    for task in results.curves["task"].unique() if not results.curves.empty else []:
        shown[f"training:{task}"] = folder / f"training_{task}.png"
        figures.training_curves_figure(results.curves, task, shown[f"training:{task}"])
    results.figures = shown


def _groups(frame: pd.DataFrame, keys: list[str]) -> Any:
    """``frame.groupby(keys)`` in order of appearance; nothing for an empty frame (which may lack the keys)."""
    return frame.groupby(keys, sort=False) if len(frame) else []


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_open(path) as handle:
        frame.to_csv(handle, index=False)


def _write_plot_data(results: AnalysisResults, folder: Path) -> None:
    conditions = results.conditions
    for (task, backbone), rows in _groups(results.curves, ["task", "backbone"]):
        for value in ("val_macro_f1", "train_loss"):
            _write_csv(
                wide_table(rows, "epoch", value, "condition", conditions),
                folder / value / f"{task}-{backbone}.csv",
            )
    for (task, backbone), rows in _groups(results.instance_curves, ["task", "backbone"]):
        wide = wide_table(rows, "threshold", "accuracy", "condition", conditions)
        counts = rows.drop_duplicates("threshold").set_index("threshold")["n"]
        wide.insert(1, "n", wide["threshold"].map(counts))
        _write_csv(wide, folder / "agreement_curve" / f"{task}-{backbone}.csv")
    if (
        results.instance_curves.empty
    ):  # dvc plots reports a missing plot folder as an error; an empty file is fine
        _write_csv(
            pd.DataFrame(columns=["threshold", "n", *conditions]),
            folder / "agreement_curve" / "no-annotations.csv",
        )
    for (task, backbone), points in _groups(results.learning_curve, ["task", "backbone"]):
        _write_csv(
            points[["real_rows", "macro_f1", "accuracy", "condition"]],
            folder / "learning_curve" / f"{task}-{backbone}.csv",
        )
    if results.learning_curve.empty:
        _write_csv(pd.DataFrame(columns=CURVE_COLUMNS[3:]), folder / "learning_curve" / "no-curve.csv")
    gaps = results.gaps.assign(subjectivity=results.gaps[results.measure])
    keys = ["task", "backbone", "subjectivity", "stars"]
    if len(gaps):
        wide_gaps = gaps.pivot(index=keys, columns="condition", values="macro_f1_gap_pts")
        wide_gaps = wide_gaps.reindex(columns=results.modes).reset_index()
    else:
        wide_gaps = pd.DataFrame(columns=[*keys, *results.modes])
    _write_csv(wide_gaps, folder / "gap_vs_subjectivity.csv")


def _write_tables(results: AnalysisResults, folder: Path) -> None:
    tables = {
        "subjectivity": results.subjectivity,
        "gap_correlation": pd.DataFrame(results.correlations),
        "diversity": results.diversity,
        "agreement_curve": results.instance_curves,
        "agreement_trends": results.instance_trends,
        "training_curves": results.curves,
        "learning_curve": results.learning_curve,
        "real_equivalent": results.worth,
    }
    for name, frame in tables.items():
        _write_csv(frame, folder / f"{name}.csv")


def _to_json(value: Any) -> Any:
    """NaN/inf → None and numpy scalars → Python, recursively, so the file is strict JSON."""
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
