"""Which generation strategy closes the zero-shot → real gap (issue 13), on a reproduced study's outputs.

For every task and mode of ``params.yaml`` (run ``dvc repro`` with ``profiles/strategies.yaml`` first): Macro-F1
(mean over the training seeds, %), the fraction of the gap between the baseline mode (zero-shot, measured in the
same run) and real data that the mode closes, its 95% interval and a verdict, by the rule of
:mod:`synthbench.analysis.gap_closure` (inconclusive when real is not clearly above chance or above zero-shot).
Modes that learn from the real labels (targeted) are shown against real and their mix instead. Prints a Markdown
table.

Usage (project root, after ``dvc repro``): python benchmarks/strategy_gap.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthbench.analysis.gap_closure import BASELINE, gap_closure
from synthbench.conditions import REAL_LABEL_MODES, mix_condition
from synthbench.config import load_params
from synthbench.errors import DataError
from synthbench.layout import Layout
from synthbench.records import EvaluationMetrics


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
                closure = gap_closure(layout, task, mode, backbone, params.seed, n_resamples=args.resamples)
                note = f"; {closure.dropped} draws dropped" if closure.dropped else ""
                print(
                    cells + f"{closure.point:+.0%} | [{closure.low:+.0%}, {closure.high:+.0%}]{note} | "
                    f"{closure.verdict} |"
                )


if __name__ == "__main__":
    try:
        main()
    except (DataError, ValueError, OSError) as error:  # a missing or stale result: one line, not a traceback
        raise SystemExit(f"strategy_gap: {error}") from None
