"""dvc.yaml and synthbench.layout name the same paths: DVC itself renders the repository's dvc.yaml for a small
params file, and every stage's outs (and the stage-file deps) must be the layout's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.conftest import REPO_ROOT

from synthbench.layout import Layout

PARAMS = {
    "tasks": ["t1", "t2"],
    "modes": ["zero_shot", "few_shot"],
    "mixes": ["few_shot"],
    "backbones": ["b1"],
    "conditions": ["real", "zero_shot", "few_shot", "real+few_shot", "real_n8"],
    "train": {"learning_curve_sizes": [8]},
    "task_files": {"specs": "tasks", "data": "tasks"},
}


@pytest.fixture(scope="module")
def stages(module_tmp: Path) -> dict[str, dict[str, list[str]]]:
    """Stage name → {"outs": [...], "deps": [...]} as DVC resolves them (paths relative to the repo)."""
    from dvc.repo import Repo

    repo = module_tmp
    shutil.copy(REPO_ROOT / "dvc.yaml", repo / "dvc.yaml")
    (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS), encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)
    with Repo(str(repo)) as dvc:
        return {
            stage.name: {
                "outs": [out.def_path for out in stage.outs],
                "deps": [dep.def_path for dep in stage.deps],
            }
            for stage in dvc.index.stages
        }


def paths(*items: Path) -> list[str]:
    return [item.as_posix() for item in items]


def test_every_stage_of_the_grid_exists(stages: dict) -> None:
    expected = {f"prepare@{t}" for t in ("t1", "t2")}
    expected |= {f"generate@{t}-{m}" for t in ("t1", "t2") for m in ("zero_shot", "few_shot")}
    expected |= {f"evaluate@{t}-{c}-b1" for t in ("t1", "t2") for c in PARAMS["conditions"]}
    assert expected <= set(stages) and {"champion", "analyze"} <= set(stages)


def test_outs_are_the_layouts_paths(stages: dict) -> None:
    layout = Layout(Path(""))
    assert stages["prepare@t1"]["outs"] == paths(layout.real_dir("t1"))
    assert stages["generate@t2-few_shot"]["outs"] == paths(
        layout.synthetic("t2", "few_shot"),
        layout.synthetic_summary("t2", "few_shot"),
        layout.synthetic_card("t2", "few_shot"),
    )
    trainings = {
        "train_real@t1-b1": "real",
        "train_synthetic@t1-zero_shot-b1": "zero_shot",
        "train_mix@t1-few_shot-b1": "real+few_shot",
        "train_curve@t1-8-b1": "real_n8",
    }
    for stage, condition in trainings.items():
        assert stages[stage]["outs"] == paths(layout.model("t1", condition, "b1")), stage
    for condition in PARAMS["conditions"]:
        outs = stages[f"evaluate@t2-{condition}-b1"]["outs"]
        assert sorted(outs) == sorted(
            paths(
                layout.predictions("t2", condition, "b1"),
                layout.confusion("t2", condition, "b1"),
                layout.confusion_png("t2", condition, "b1"),
                layout.metrics("t2", condition, "b1"),
            )
        )
    assert stages["champion"]["outs"] == paths(layout.champions)
    assert stages["pilot@t1"]["outs"] == paths(
        *(layout.pilot("t1", suffix) for suffix in ("json", "md", "html"))
    )


def test_stage_file_deps_are_the_layouts_paths(stages: dict) -> None:
    layout = Layout(Path(""))
    generate = stages["generate@t1-zero_shot"]["deps"]
    assert {layout.task_spec("t1").as_posix(), layout.real("t1", "train").as_posix()} <= set(generate)
    mix = stages["train_mix@t2-few_shot-b1"]["deps"]
    assert set(
        paths(
            layout.labels("t2"),
            layout.real("t2", "train"),
            layout.real("t2", "test"),
            layout.synthetic("t2", "few_shot"),
            layout.synthetic_summary("t2", "few_shot"),  # its generation cost goes to MLflow
        )
    ) <= set(mix)
    assert (
        layout.synthetic_summary("t1", "zero_shot").as_posix()
        in stages["train_synthetic@t1-zero_shot-b1"]["deps"]
    )
    assert layout.task_spec("t2").as_posix() not in mix  # a prompt edit must not retrain
    evaluate = stages["evaluate@t1-real_n8-b1"]["deps"]
    assert {layout.model("t1", "real_n8", "b1").as_posix(), layout.real("t1", "test").as_posix()} <= set(
        evaluate
    )
    # No stage of one task depends on another task's files.
    for name, stage in stages.items():
        if "@t1" in name:
            assert not [dep for dep in stage["deps"] if "/t2" in dep], name
