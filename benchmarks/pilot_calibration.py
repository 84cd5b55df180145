"""Is the pilot right? Its predicted gap next to the gap the full study measured, per task, calibrated
leave-one-task-out; and the paper's Table 1 on the same runs (issue 12).

Run after ``dvc repro`` with ``profiles/calibration.yaml`` as params.yaml (every task piloted, then trained on
real, zero-shot and few-shot data over several seeds)::

    python benchmarks/pilot_calibration.py [--params params.yaml]

Prints Markdown:

1. Table 1: real / zero-shot / few-shot test Macro-F1 per task (mean over the training seeds, %, with the 95%
   interval over seeds) and the task's subjectivity (1–5 stars, the task spec's).
2. Per task and mode: the pilot's signals (label fidelity, real-vs-synthetic AUC, diversity ratio), its raw
   predicted gap (real − synthetic Macro-F1, points, the cheap classifiers on real validation rows), the
   calibrated prediction and the actual gap (fine-tuned, seed means, on the test split).
3. How good each predictor is over all task/mode pairs: Spearman ρ and mean absolute error (points).
   *Calibrated* = a line ``actual ≈ a + b · signal`` fitted on the other tasks' pairs only (leave one task out:
   both modes of the held-out task are predicted by a line that never saw that task). The pilot's predictor is
   the calibrated raw prediction, chosen before the runs; the single-signal lines are there to say which signal
   carries the information and which does not.
4. The pilot's cost: its requests as a share of the full run's, per task.
5. Cross-task: Spearman ρ of each mode's gap with subjectivity (the paper: the gap widens with subjectivity).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from synthbench.config import load_params
from synthbench.errors import DataError
from synthbench.layout import Layout
from synthbench.pilot.calibration import Pair, agreement, leave_one_task_out
from synthbench.records import EvaluationMetrics
from synthbench.tasks.registry import load_task

MODES = ("zero_shot", "few_shot")
SIGNALS = {  # name → how to read it off a pilot mode entry
    "raw prediction": lambda e: 100 * e["prediction"]["gap"],
    "label fidelity": lambda e: e["fidelity"]["overall"],
    "AUC": lambda e: e["distinguishability_auc"],
    "diversity ratio": lambda e: e["diversity_ratio"],
}
PREDICTOR = "raw prediction"


def seed_mean(layout: Layout, task: str, condition: str, backbone: str) -> EvaluationMetrics:
    return EvaluationMetrics.read(layout.metrics(task, condition, backbone))


def interval(m: EvaluationMetrics) -> str:
    ci = m.macro_f1_ci95
    if ci is None:
        return f"{100 * m.macro_f1_mean:.1f}"
    return f"{100 * m.macro_f1_mean:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(Path(args.params))
    layout = Layout(Path("."))
    backbone = params.backbones[0]
    seeds = len(params.train.seed_list)

    print(f"## Table 1: test Macro-F1 %, mean over {seeds} training seeds [95% interval], {backbone}\n")
    print("| task | subjectivity | real | zero-shot | few-shot |")
    print("|---|---|---|---|---|")
    pairs: list[Pair] = []
    bounds: list[tuple[float, float]] = []  # the raw prediction's 95% interval, per pair
    verdicts: list[str] = []
    shares: dict[str, str] = {}
    subjectivity: dict[str, int] = {}
    for task in params.tasks:
        subjectivity[task] = load_task(task, params.custom_tasks).subjectivity
        scores = {c: seed_mean(layout, task, c, backbone) for c in ("real", *MODES)}
        print(f"| {task} | {subjectivity[task]} | " + " | ".join(interval(scores[c]) for c in scores) + " |")
        pilot = json.loads(layout.pilot(task, "json").read_text())
        for mode in MODES:
            entry = pilot["modes"][mode]
            summary = json.loads(layout.synthetic_summary(task, mode).read_text())
            full = sum(summary["attempts_per_label"].values())
            shares[f"{task} {mode}"] = f"{entry['cost']['pilot_requests']} of {full}"
            signals = {name: read(entry) for name, read in SIGNALS.items()}
            pairs.append(
                Pair(
                    task,
                    mode,
                    {name: np.nan if value is None else float(value) for name, value in signals.items()},
                    100 * (scores["real"].macro_f1_mean - scores[mode].macro_f1_mean),
                )
            )
            bounds.append((100 * entry["prediction"]["gap_low"], 100 * entry["prediction"]["gap_high"]))
            verdicts.append(entry["verdict"])

    actual = [p.actual for p in pairs]
    calibrated = {name: leave_one_task_out(pairs, name) for name in SIGNALS}
    print("\n## The pilot per task and mode (gaps: real − synthetic Macro-F1, points)\n")
    print(
        "| task | mode | fidelity | AUC | diversity ratio | verdict | raw predicted gap [95%] | "
        "calibrated (LOTO) | actual gap |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for i, p in enumerate(pairs):
        s = p.signals
        print(
            f"| {p.task} | {p.mode} | {s['label fidelity']:.2f} | {s['AUC']:.2f} | {s['diversity ratio']:.2f} | "
            f"{verdicts[i]} | {s[PREDICTOR]:+.1f} [{bounds[i][0]:+.1f}, {bounds[i][1]:+.1f}] | "
            f"{calibrated[PREDICTOR][i]:+.1f} | "
            f"{p.actual:+.1f} |"
        )

    print(f"\n## Predictors over {len(pairs)} task/mode pairs ({len(params.tasks)} tasks)\n")
    print("| predictor | Spearman ρ | MAE (points) |")
    print("|---|---|---|")
    rho, mae, _ = agreement([p.signals[PREDICTOR] for p in pairs], actual)
    print(f"| raw prediction, uncalibrated | {rho:+.2f} | {mae:.1f} |")
    for name in SIGNALS:
        rho, mae, _ = agreement(calibrated[name], actual)
        mark = " (**the pilot's predictor**)" if name == PREDICTOR else ""
        print(f"| {name}, calibrated leave-one-task-out{mark} | {rho:+.2f} | {mae:.1f} |")
    inside = sum(low <= p.actual <= high for p, (low, high) in zip(pairs, bounds, strict=True))
    print(f"\nThe actual gap fell inside the raw prediction's interval for {inside} of {len(pairs)} pairs.")

    print("\n## The pilot's requests, of the full run's\n")
    print("| task/mode | pilot requests of full |")
    print("|---|---|")
    for key, share in shares.items():
        print(f"| {key} | {share} |")

    print("\n## Cross-task: the gap vs subjectivity\n")
    for mode in MODES:
        gaps = [p.actual for p in pairs if p.mode == mode]
        stars = [subjectivity[p.task] for p in pairs if p.mode == mode]
        result = spearmanr(stars, gaps)
        print(f"- {mode}: Spearman ρ = {result.statistic:+.2f} (p = {result.pvalue:.2f}, {len(gaps)} tasks)")


if __name__ == "__main__":
    try:
        main()
    except (DataError, ValueError, OSError, KeyError) as error:  # a missing or stale result: one line
        raise SystemExit(f"pilot_calibration: {error!r}") from None
