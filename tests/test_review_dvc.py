"""The review file in the real DVC pipeline: a project without reviews runs (the ``review`` stage creates empty
files), and after a person's verdicts ``dvc repro`` retrains only the models of that task and mode — on the
reviewed rows. A temp git repo, a tiny custom task from local files, generation against the fake OpenAI server
(tests/openai_server.py, a real HTTP server), the real MiniLM and MLflow (SQLite)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from tests.openai_server import serve
from tests.test_pipeline_dvc import set_params, sh, stages_run
from tests.test_training_data import FRESH, ROTTEN

from synthbench.data.reviews import DecisionStore, content_hash
from synthbench.layout import Layout

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[1]
TASK = "tiny_reviews"
TASK_SPEC = {
    "name": TASK,
    "description": "Tiny film reviews.",
    "subjectivity": 3,
    "labels": [
        {"name": "fresh", "description": "positive", "instruction": "a positive film review"},
        {"name": "rotten", "description": "negative", "instruction": "a negative film review"},
    ],
    "source": {"kind": "local", "files": {"train": "tasks/train.jsonl", "test": "tasks/test.jsonl"}},
    "prompt": {
        "context": "You are a film critic.",
        "generation": "Write {label_instruction} about {style}, at most {length_words} words.",
        "styles": ["a comedy", "a drama"],
        "length_words": 20,
    },
}


def _params(base_url: str) -> dict:
    return {
        "seed": 0,
        "tasks": [TASK],
        "modes": ["zero_shot", "few_shot"],
        "mixes": ["few_shot"],
        "conditions": ["real", "zero_shot", "few_shot", "real+few_shot"],
        "backbones": ["minilm-l6"],
        "custom_tasks": {TASK: "tasks/tiny.yaml"},
        "prepare": {"train_per_label": 8, "test_per_label": 2, "min_chars": 5},
        "generate": {
            "endpoint": {"kind": "openai", "base_url": base_url, "model": "fake-model", "concurrency": 4},
            "per_label": 5,
            "max_tokens": 12,
            "near_duplicate_threshold": None,
            "diversity_every": 0,
        },
        "train": {"epochs": 1, "batch_size": 8, "max_length": 32, "learning_curve_sizes": [], "seeds": None},
        "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "synthbench"},
        "analysis": {"diversity": False},
    }


@pytest.fixture(scope="module")
def repo(module_tmp: Path):
    root = module_tmp
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(
        REPO_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (root / "tasks").mkdir()
    (root / "tasks" / "tiny.yaml").write_text(yaml.safe_dump(TASK_SPEC))
    for split, part in (("train", slice(0, 8)), ("test", slice(8, 10))):
        rows = [{"text": t, "label": "fresh"} for t in FRESH[part]] + [
            {"text": t, "label": "rotten"} for t in ROTTEN[part]
        ]
        (root / "tasks" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with serve() as server:
        shutil.copy(REPO_ROOT / "params.yaml", root / "params.yaml")  # every section dvc.yaml names
        set_params(root, _params(server.base_url))
        sh("git", "init", "-q", cwd=root)
        sh("git", "config", "user.email", "t@example.com", cwd=root)
        sh("git", "config", "user.name", "t", cwd=root)
        sh("dvc", "init", "-q", cwd=root)
        first = sh("dvc", "repro", cwd=root)
        sh("git", "add", "-A", cwd=root)
        sh("git", "commit", "-qm", "study without reviews", cwd=root)
        yield {"root": root, "first": first, "server": server}


def test_a_project_without_reviews_runs_with_empty_review_files(repo: dict) -> None:
    ran = stages_run(repo["first"])
    assert {
        f"review@{TASK}-zero_shot",
        f"review@{TASK}-few_shot",
        f"train_mix@{TASK}-few_shot-minilm-l6",
    } <= ran
    layout = Layout(repo["root"])
    assert layout.review(TASK, "few_shot").read_text() == ""
    status = sh("git", "status", "--porcelain", cwd=repo["root"])
    assert status == ""  # the (empty) review files are committed to git, not ignored as DVC-cached outputs


def test_review_retrains_only_that_modes_models_on_the_reviewed_rows(repo: dict) -> None:
    root, layout = repo["root"], Layout(repo["root"])
    rows = [json.loads(line) for line in layout.synthetic(TASK, "few_shot").read_text().splitlines()]
    before = json.loads(layout.training_manifest(TASK, "few_shot", "minilm-l6").read_text())
    store = DecisionStore(layout.review(TASK, "few_shot"), ["fresh", "rotten"])
    store.record(rows[0]["text"], rows[0]["label"], "off_task")
    store.record(rows[1]["text"], rows[1]["label"], "unnatural")
    store.record(rows[2]["text"], rows[2]["label"], "ok")
    output = sh("dvc", "repro", cwd=root)
    ran = stages_run(output)
    backbone = "minilm-l6"
    assert {
        f"train_synthetic@{TASK}-few_shot-{backbone}",
        f"train_mix@{TASK}-few_shot-{backbone}",
        f"evaluate@{TASK}-few_shot-{backbone}",
        f"evaluate@{TASK}-real+few_shot-{backbone}",
    } <= ran
    assert (
        not {
            f"train_synthetic@{TASK}-zero_shot-{backbone}",
            f"train_real@{TASK}-{backbone}",
            f"generate@{TASK}-few_shot",
            f"generate@{TASK}-zero_shot",
            f"prepare@{TASK}",
            f"evaluate@{TASK}-zero_shot-{backbone}",
            f"evaluate@{TASK}-real-{backbone}",
        }
        & ran
    )
    after = json.loads(layout.training_manifest(TASK, "few_shot", "minilm-l6").read_text())
    assert after["n_train"] + after["n_val"] == before["n_train"] + before["n_val"] - 2
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    deps = {
        d["path"]: d["md5"] for d in lock["stages"][f"train_synthetic@{TASK}-few_shot-{backbone}"]["deps"]
    }
    assert deps[f"data/review/{TASK}/few_shot.jsonl"] != "d41d8cd98f00b204e9800998ecf8427e"  # md5 of ""
    report = (root / "reports" / "report.md").read_text()
    assert (
        "## Human review of synthetic rows" in report and f"| {TASK} | few_shot | all | 3 | 66.7%" in report
    )
    assert content_hash(rows[0]["text"]) in layout.review(TASK, "few_shot").read_text()
    assert "Running stage" not in sh("dvc", "repro", cwd=root)  # nothing left to do


def test_a_corrupted_review_file_stops_repro_with_one_error_line(repo: dict) -> None:
    import subprocess

    root, layout = repo["root"], Layout(repo["root"])
    path = layout.review(TASK, "zero_shot")
    path.write_text('{"hash": "0123", "label": "fresh", "verdict": "maybe"}\n')
    try:
        done = subprocess.run(
            ["dvc", "repro", f"review@{TASK}-zero_shot"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode != 0
        errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error: ")]
        assert errors == [
            f"error: data/review/{TASK}/zero_shot.jsonl:1: verdict 'maybe' is not one of "
            "['ok', 'wrong_label', 'off_task', 'unnatural']; fix or delete that line (git diff/checkout "
            "shows what changed)"
        ]
        assert "Traceback" not in done.stdout + done.stderr
    finally:
        sh("git", "checkout", "--", str(path.relative_to(root)), cwd=root)
