"""The real-data learning curve: points from real_n<N> and real, and the real rows a synthetic set is worth."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from factories import evaluation_metrics, study, training_manifest
from synthbench.analysis.learning_curve import (
    describe_worth,
    learning_curve_frame,
    real_equivalent,
    worth_frame,
)


def test_real_equivalent_interpolates_in_log_rows() -> None:
    sizes, scores = [20, 50, 200], [0.40, 0.60, 0.80]
    rows, bound = real_equivalent(sizes, scores, 0.50)
    assert bound == "within" and rows == pytest.approx(math.sqrt(20 * 50))  # halfway in log space
    assert real_equivalent(sizes, scores, 0.60) == (pytest.approx(50.0), "within")
    assert real_equivalent(sizes, scores, 0.30) == (20.0, "below")
    assert real_equivalent(sizes, scores, 0.90) == (200.0, "above")


def test_real_equivalent_reads_a_noisy_dip_on_the_running_maximum() -> None:
    # 0.55 at 100 rows is a dip below 0.60 at 50 rows: the envelope is flat there, so 0.58 sits between 20 and 50
    rows, bound = real_equivalent([20, 50, 100, 200], [0.40, 0.60, 0.55, 0.80], 0.58)
    assert bound == "within" and 20 < rows < 50
    rows, _ = real_equivalent([20, 50, 100, 200], [0.40, 0.60, 0.55, 0.80], 0.70)
    assert 100 < rows < 200


def table() -> pd.DataFrame:
    rows = [
        ("real_n20", 0.40),
        ("real_n50", 0.60),
        ("real", 0.80),
        ("zero_shot", 0.50),
        ("real+zero_shot", 0.85),
        ("real_n1000", 0.80),
    ]
    return pd.DataFrame(
        [{"task": "t", "backbone": "b", "condition": c, "macro_f1": f, "accuracy": f + 0.01} for c, f in rows]
    )


def test_curve_takes_sizes_from_training_manifests_and_worth_covers_other_conditions() -> None:
    sizes = {
        "real": (180, 20),
        "real_n1000": (180, 20),  # capped at the real set: same point as 'real'
        "zero_shot": (108, 12),
        "real+zero_shot": (288, 32),
    }
    trainings = {
        ("t", c, "b"): training_manifest("t", c, "b", n_train=n, n_val=v) for c, (n, v) in sizes.items()
    }
    curve = learning_curve_frame(table(), trainings)
    assert curve[["condition", "real_rows"]].values.tolist() == [
        ["real_n20", 20],
        ["real_n50", 50],
        ["real", 200],
    ]
    worth = worth_frame(table(), curve, trainings).set_index("condition")
    assert worth.loc["zero_shot", "rows"] == 120 and worth.loc["zero_shot", "bound"] == "within"
    assert worth.loc["zero_shot", "real_equivalent_rows"] == pytest.approx(math.sqrt(20 * 50))
    assert describe_worth(worth.loc["zero_shot"]) == "≈ 32"
    assert (
        worth.loc["real+zero_shot", "bound"] == "above"
        and describe_worth(worth.loc["real+zero_shot"]) == "> 200"
    )


def test_no_curve_without_two_points() -> None:
    only_real = table()[table()["condition"].isin(["real", "zero_shot"])]
    curve = learning_curve_frame(only_real, {})
    assert len(curve) == 0  # 'real' without a training.json has no known size
    assert worth_frame(only_real, curve, {}).empty


def test_analyze_reports_the_curve_and_what_each_synthetic_set_is_worth(tmp_path) -> None:
    import json

    from synthbench.analysis.sections import SECTIONS
    from synthbench.analysis.stage import run_analyze
    from synthbench.layout import Layout
    from test_analysis_report import BACKBONE, build_run

    build_run(tmp_path, tasks=["bbc_news"])  # real 0.80, zero_shot 0.60, few_shot 0.70
    sizes = {"real_n20": (20, 0.50), "real_n50": (50, 0.65), "real": (200, 0.80)}
    layout = Layout(tmp_path)
    for condition, (rows, macro_f1) in sizes.items():
        training_manifest("bbc_news", condition, BACKBONE, n_train=rows - rows // 10, n_val=rows // 10).write(
            layout.training_manifest("bbc_news", condition, BACKBONE)
        )
        if condition != "real":
            evaluation_metrics("bbc_news", condition, BACKBONE, [macro_f1]).write(
                layout.metrics("bbc_news", condition, BACKBONE)
            )
    params = study(
        {
            "tasks": ["bbc_news"],
            "modes": ["zero_shot", "few_shot"],
            "backbones": [BACKBONE],
            "train": {"learning_curve_sizes": [20, 50]},
            "conditions": ["real", "zero_shot", "few_shot", "real_n20", "real_n50"],
        },
        tmp_path,
        {"diversity": False},
    )
    run_analyze(params, layout)
    reports = tmp_path / "reports"
    curve = pd.read_csv(reports / "plots" / "learning_curve" / f"bbc_news-{BACKBONE}.csv")
    assert curve["real_rows"].tolist() == [20, 50, 200] and curve["macro_f1"].tolist() == [0.50, 0.65, 0.80]
    worth = json.loads((reports / "analysis.json").read_text())["learning_curve"]["real_equivalent"]
    by_condition = {row["condition"]: row for row in worth}
    # zero_shot 0.60 sits 2/3 of the way from 0.50 (20 rows) to 0.65 (50 rows) in log rows: 20·2.5^(2/3) ≈ 36.8
    assert by_condition["zero_shot"]["real_equivalent_rows"] == pytest.approx(20 * 2.5 ** (2 / 3))
    md = (reports / "report.md").read_text(encoding="utf-8")
    assert f"\n## {SECTIONS[5]}\n" in md
    assert "| bbc_news | minilm-l6 | zero_shot |" in md and "≈ 37" in md
    assert (reports / "figures" / f"learning_curve_bbc_news_{BACKBONE}.png").read_bytes()[:4] == b"\x89PNG"
