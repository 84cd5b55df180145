"""Which generation strategy closes the zero-shot → real gap (issue 13), on a reproduced study's outputs.

For every task and mode of ``params.yaml`` (run ``dvc repro`` with ``profiles/strategies.yaml`` first): Macro-F1
(mean over the training seeds, %), and the fraction of the gap between the baseline mode (zero-shot, measured in
the same run) and real data that the mode closes: ``(F1(mode) − F1(zero_shot)) / (F1(real) − F1(zero_shot))``
(1 = as good as real, 0 = no better than zero-shot, negative = worse). Its 95% interval is a paired percentile
bootstrap over the test texts on the deployed seeds' predictions (the same draws for the three models; draws
where real is not above zero-shot are dropped and counted). Modes that learn from the real labels (targeted) are
shown against real and their mix instead. Prints a Markdown table.

Usage (project root, after ``dvc repro``): python benchmarks/strategy_gap.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from synthbench.conditions import REAL_LABEL_MODES, mix_condition
from synthbench.config import load_params
from synthbench.data.io import read_jsonl
from synthbench.layout import Layout
from synthbench.records import EvaluationMetrics
from synthbench.stats import bootstrap_scores

BASELINE = "zero_shot"


def closed_fraction(
    layout: Layout, task: str, mode: str, backbone: str, n_resamples: int, seed: int
) -> tuple[float, float, float, int]:
    """(fraction closed on seed means, 95% low, 95% high, bootstrap draws dropped)."""
    means = {c: metrics(layout, task, c, backbone).macro_f1_mean for c in ("real", BASELINE, mode)}
    remaining = means["real"] - means[BASELINE]
    point = (means[mode] - means[BASELINE]) / remaining if remaining > 0 else float("nan")
    rows = {c: read_jsonl(layout.predictions(task, c, backbone)) for c in ("real", BASELINE, mode)}
    truth = [str(r["label"]) for r in rows["real"]]
    if any([r["text"] for r in rows[c]] != [r["text"] for r in rows["real"]] for c in rows):
        raise SystemExit(f"{task}: the conditions' predictions are not on the same test texts")
    draws = bootstrap_scores(
        truth, {c: [str(r["prediction"]) for r in rows[c]] for c in rows}, n_resamples=n_resamples, seed=seed
    )
    gap = draws["real"] - draws[BASELINE]
    usable = gap > 0
    fractions = (draws[mode][usable] - draws[BASELINE][usable]) / gap[usable]
    if len(fractions) == 0:
        return point, float("nan"), float("nan"), n_resamples
    low, high = np.percentile(fractions, [2.5, 97.5])
    return point, float(low), float(high), int((~usable).sum())


def metrics(layout: Layout, task: str, condition: str, backbone: str) -> EvaluationMetrics:
    return EvaluationMetrics.read(layout.metrics(task, condition, backbone))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    params = load_params(Path(args.params))
    layout = Layout(Path("."))
    print(
        "| task | backbone | mode | Macro-F1 % (seeds) | real % | zero-shot % | gap closed | 95% interval | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for task in params.tasks:
        for backbone in params.backbones:
            real = metrics(layout, task, "real", backbone)
            base = metrics(layout, task, BASELINE, backbone)
            for mode in params.modes:
                if mode == BASELINE:
                    continue
                m = metrics(layout, task, mode, backbone)
                cells = f"| {task} | {backbone} | {mode} | {100 * m.macro_f1_mean:.1f} ({m.n_seeds}) | "
                cells += f"{100 * real.macro_f1_mean:.1f} | {100 * base.macro_f1_mean:.1f} | "
                if mode in REAL_LABEL_MODES:
                    mix = mix_condition(mode)
                    mixed = (
                        f"{mix} {100 * metrics(layout, task, mix, backbone).macro_f1_mean:.1f}%"
                        if layout.metrics(task, mix, backbone).exists()
                        else f"{mix} not run"
                    )
                    print(cells + f"— | — | uses real labels: vs real, {mixed} |")
                    continue
                point, low, high, dropped = closed_fraction(
                    layout, task, mode, backbone, args.resamples, params.seed
                )
                closes = low > 0 and point >= 0.5
                note = f"; {dropped} draws dropped" if dropped else ""
                verdict = (
                    "closes ≥ 50%, interval > 0" if closes else ("helps" if low > 0 else "not shown to help")
                )
                print(cells + f"{point:+.0%} | [{low:+.0%}, {high:+.0%}]{note} | {verdict} |")


if __name__ == "__main__":
    main()
