"""The whole pipeline through real DVC in a temp git repo: embedded llama.cpp server, MiniLM, MLflow (SQLite).

One module-scoped run keeps the suite fast; each test reads one property of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
TASK = "rotten_tomatoes"
TINY = {
    "tasks": [TASK],
    "prepare": {"train_per_label": 6, "test_per_label": 5},
    "generate": {"per_label": 3, "diversity_every": 2, "max_tokens": 40, "max_attempts_factor": 4},
    "train": {
        "epochs": 1,
        "batch_size": 4,
        "learning_curve_sizes": [8],
        "seeds": None,
    },  # one seed: tiny data
    "mixes": ["zero_shot"],
    "conditions": ["real", "zero_shot", "few_shot", "real+zero_shot", "real_n8"],
}
CONDITIONS = TINY["conditions"]


def sh(*args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_params(repo: Path, updates: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in updates.items():
        if isinstance(values, dict):
            params[section].update(values)
        else:
            params[section] = values
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def study(module_tmp: Path) -> dict:
    repo = module_tmp
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "params.yaml"):
        shutil.copy(REPO_ROOT / name, repo / name)
    shutil.copytree(
        REPO_ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (repo / "tasks").mkdir()  # params task_files: the folder prepare declares as a dep (built-in tasks only)
    (repo / "tasks" / ".gitkeep").touch()
    set_params(repo, TINY)
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.email", "t@example.com", cwd=repo)
    sh("git", "config", "user.name", "t", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    first = sh("dvc", "repro", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "first study", cwd=repo)
    first_rev = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    synthetic = repo / "data" / "synthetic" / TASK / "zero_shot.jsonl"
    return {
        "repo": repo,
        "first_output": first,
        "first_rev": first_rev,
        "first_bytes": synthetic.read_bytes(),
    }


def test_first_repro_runs_every_stage_and_writes_metrics(study: dict) -> None:
    ran = stages_run(study["first_output"])
    assert f"prepare@{TASK}" in ran
    assert {f"generate@{TASK}-zero_shot", f"generate@{TASK}-few_shot"} <= ran
    assert {f"train_mix@{TASK}-zero_shot-minilm-l6", f"train_curve@{TASK}-8-minilm-l6", "champion"} <= ran
    assert {f"evaluate@{TASK}-{c}-minilm-l6" for c in CONDITIONS} <= ran
    for condition in CONDITIONS:
        metrics = json.loads(
            (study["repo"] / "results" / TASK / condition / "minilm-l6" / "metrics.json").read_text()
        )
        assert 0.0 <= metrics["macro_f1"] <= 1.0 and 0.0 <= metrics["accuracy"] <= 1.0
        assert metrics["n_test"] == 10
    summary = (study["repo"] / "reports" / "summary.md").read_text()
    assert summary.count(f"| {TASK} | minilm-l6 |") == len(CONDITIONS)
    assert (study["repo"] / "reports" / "summary.png").stat().st_size > 1000


def test_mix_and_curve_train_on_what_they_say_and_champion_points_at_the_best(study: dict) -> None:
    import mlflow

    repo = study["repo"]
    manifest = {
        c: json.loads((repo / "models" / TASK / c / "minilm-l6" / "training.json").read_text())
        for c in ("real", "zero_shot", "real+zero_shot", "real_n8")
    }
    rows = {c: m["n_train"] + m["n_val"] for c, m in manifest.items()}
    assert rows["real_n8"] == 8
    # the mix holds every real row and the zero-shot rows that are not repeats of them
    assert max(rows["real"], rows["zero_shot"]) < rows["real+zero_shot"] <= rows["real"] + rows["zero_shot"]
    metrics = {
        c: json.loads((repo / "results" / TASK / c / "minilm-l6" / "metrics.json").read_text())
        for c in CONDITIONS
    }
    champions = json.loads((repo / "reports" / "champions.json").read_text())
    best = max(CONDITIONS, key=lambda c: (metrics[c]["macro_f1"], metrics[c]["accuracy"]))  # first on ties
    assert champions[TASK]["condition"] == best
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    version = client.get_model_version_by_alias(f"synthbench-{TASK}", "champion")
    assert version.tags["synthbench.condition"] == best
    curve = (repo / "reports" / "plots" / "learning_curve" / f"{TASK}-minilm-l6.csv").read_text().splitlines()
    assert curve[0].startswith("real_rows,macro_f1") and len(curve) == 3  # real_n8 and real


def test_synthetic_rows_carry_provenance_and_summary_counts(study: dict) -> None:
    base = study["repo"] / "data" / "synthetic" / TASK
    rows = [json.loads(line) for line in (base / "few_shot.jsonl").read_text().splitlines()]
    summary = json.loads((base / "few_shot.summary.json").read_text())
    assert summary["accepted_per_label"] == {
        "fresh": len([r for r in rows if r["label"] == "fresh"]),
        "rotten": len([r for r in rows if r["label"] == "rotten"]),
    }
    assert all({"text", "label", "model", "prompt_id", "seed", "sample_index"} <= set(r) for r in rows)
    assert rows and all(r["model"].startswith("embedded/SmolLM2") for r in rows)
    assert summary["client"]["completion_tokens"] > 0
    assert (base / "few_shot.card.md").read_text().startswith("# Synthetic dataset card")


def test_mlflow_holds_registered_models_with_tags(study: dict) -> None:
    import mlflow

    repo = study["repo"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for condition in ("real", "zero_shot", "few_shot"):
        name = f"synthbench-{TASK}-{condition}-minilm-l6"
        versions = client.search_model_versions(f"name='{name}'")
        assert len(versions) == 1
        tags = versions[0].tags
        assert tags["synthbench.task"] == TASK and tags["synthbench.condition"] == condition
        assert tags["synthbench.backbone"] == "minilm-l6"
        stage = (
            f"train_real@{TASK}-minilm-l6"
            if condition == "real"
            else f"train_synthetic@{TASK}-{condition}-minilm-l6"
        )
        dep_md5 = {d["path"]: d["md5"] for d in lock["stages"][stage]["deps"]}
        data_path = (
            f"data/real/{TASK}/train.jsonl"
            if condition == "real"
            else f"data/synthetic/{TASK}/{condition}.jsonl"
        )
        assert tags["synthbench.dataset_md5"] == dep_md5[data_path]
        run = client.get_run(versions[0].run_id)
        assert 0.0 <= run.data.metrics["test_macro_f1"] <= 1.0
        assert "val_macro_f1" in run.data.metrics
        assert all(not value.startswith("sk-") for value in run.data.params.values())


def test_second_repro_runs_nothing_and_forced_generation_makes_no_calls(study: dict) -> None:
    repo = study["repo"]
    assert stages_run(sh("dvc", "repro", cwd=repo)) == set()
    forced = sh("dvc", "repro", "-f", "-s", f"generate@{TASK}-zero_shot", cwd=repo)
    assert stages_run(forced) == {f"generate@{TASK}-zero_shot"}
    summary = json.loads((repo / "data" / "synthetic" / TASK / "zero_shot.summary.json").read_text())
    assert summary["client"]["calls_made"] == 0 and summary["client"]["cached"] > 0
    assert (repo / "data" / "synthetic" / TASK / "zero_shot.jsonl").read_bytes() == study["first_bytes"]


def test_generation_param_change_reruns_only_downstream_and_checkout_restores(study: dict) -> None:
    repo = study["repo"]
    set_params(repo, {"generate": {"temperature": 0.3}})
    ran = stages_run(sh("dvc", "repro", cwd=repo))
    synthetic_stages = {
        f"{stage}@{TASK}-{mode}" for stage in ("generate",) for mode in ("zero_shot", "few_shot")
    }
    downstream = (
        {f"train_synthetic@{TASK}-{m}-minilm-l6" for m in ("zero_shot", "few_shot")}
        | {f"evaluate@{TASK}-{m}-minilm-l6" for m in ("zero_shot", "few_shot", "real+zero_shot")}
        | {f"train_mix@{TASK}-zero_shot-minilm-l6", "champion", "analyze", f"pilot@{TASK}"}
    )
    assert synthetic_stages <= ran
    assert ran <= synthetic_stages | downstream
    untouched = {f"evaluate@{TASK}-{c}-minilm-l6" for c in ("real", "real_n8")}
    assert not any(s.startswith(("prepare", "train_real", "train_curve")) or s in untouched for s in ran)
    synthetic = repo / "data" / "synthetic" / TASK / "zero_shot.jsonl"
    assert synthetic.read_bytes() != study["first_bytes"]
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "cooler sampling", cwd=repo)
    sh("git", "checkout", "-q", study["first_rev"], cwd=repo)
    sh("dvc", "checkout", cwd=repo)
    assert synthetic.read_bytes() == study["first_bytes"]
