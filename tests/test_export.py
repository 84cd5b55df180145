"""synthbench export: the reviewed synthetic rows as a ``datasets.DatasetDict`` (ClassLabel with the task's label
names, provenance columns) that reloads with ``load_from_disk``, its dataset card, and ``--push-to-hub``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from tests.fake_hub import fake_hub
from tests.review_fixtures import LABELS, MODEL, params, synthetic_rows, write_project
from tests.test_training_data import TASK

from synthbench.data.reviews import DecisionStore, content_hash
from synthbench.review.export import export_dataset


def _reviewed_project(root: Path):
    layout = write_project(root)
    rows = synthetic_rows("few_shot")
    store = DecisionStore(layout.review(TASK, "few_shot"), LABELS)
    store.record(rows[0]["text"], "fresh", "ok")
    store.record(rows[1]["text"], "fresh", "off_task")
    store.record(rows[2]["text"], "fresh", "wrong_label", relabel="rotten")
    store.record(rows[13]["text"], "rotten", "unnatural")
    return layout, rows


def test_export_reloads_with_classlabel_features_provenance_and_card(tmp_path: Path) -> None:
    from datasets import ClassLabel, load_from_disk

    layout, rows = _reviewed_project(tmp_path)
    result = export_dataset(TASK, "few_shot", params(tmp_path), layout)
    assert (result["n_rows"], result["dropped"]) == (22, 2)
    assert Path(result["path"]) == layout.export(TASK, "few_shot")
    reloaded = load_from_disk(str(layout.export(TASK, "few_shot")))
    train = reloaded["train"]
    assert list(reloaded) == ["train"] and train.num_rows == 22
    assert isinstance(train.features["label"], ClassLabel) and train.features["label"].names == LABELS
    assert set(train.column_names) == {
        "text",
        "label",
        "generated_label",
        "review_verdict",
        "content_hash",
        "mode",
        "model",
        "prompt_id",
        "seed",
        "sample_index",
        "request_key",
        "strategy_provenance",
    }
    by_text = {row["text"]: row for row in train}
    assert rows[1]["text"] not in by_text and rows[13]["text"] not in by_text
    relabelled = by_text[rows[2]["text"]]
    assert train.features["label"].int2str(relabelled["label"]) == "rotten"
    assert (relabelled["generated_label"], relabelled["review_verdict"]) == ("fresh", "wrong_label")
    assert (
        by_text[rows[0]["text"]]["review_verdict"] == "ok"
        and by_text[rows[5]["text"]]["review_verdict"] == ""
    )
    assert by_text[rows[5]["text"]]["request_key"] == rows[5]["request_key"]
    assert {row["mode"] for row in train} == {"few_shot"} and {
        row["strategy_provenance"] for row in train
    } == {""}
    assert by_text[rows[5]["text"]]["content_hash"] == content_hash(rows[5]["text"])
    card = (layout.export(TASK, "few_shot") / "README.md").read_text()
    assert card.startswith("---\nlicense: other\n") and "- text-classification" in card
    for expected in (
        f"| model | `{MODEL}` |",
        "'temperature': 0.9",
        "| cost (USD) | 0.0123 |",
        "by reason: {'too_short': 2}",
        "label noise 25.0% (Wilson 95% interval",
        "`fresh`: 3 reviewed, reject rate 66.7% (wrong_label 1, off_task 1, unnatural 0)",
        "## Licence note",
        "**user**: Write a fresh movie review.",
    ):
        assert expected in card, expected


def test_push_to_hub_sends_parquet_and_card_through_the_real_upload_code(tmp_path: Path, cli) -> None:
    """``datasets``' ``push_to_hub`` and ``huggingface_hub``'s ``upload_file`` run unmodified in the CLI process;
    only the hub's HTTP service is mocked — by a fake hub server on 127.0.0.1 (tests/fake_hub.py) that
    ``HF_ENDPOINT`` points at. ``HF_HUB_DISABLE_XET=1`` makes the client use the hub's standard LFS upload
    (which the fake speaks) instead of the Xet chunk store."""
    import pyarrow.parquet as pq
    from datasets import Features

    _reviewed_project(tmp_path)
    with fake_hub() as hub:
        done = cli(
            "export",
            "--task",
            TASK,
            "--mode",
            "few_shot",
            "--push-to-hub",
            "tester/tiny-reviews",
            cwd=tmp_path,
            env={
                "HF_ENDPOINT": hub.url,
                "HF_HUB_OFFLINE": "0",
                "HF_TOKEN": "hf_fake",
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_XET": "1",
            },
        )
    assert done.returncode == 0, done.stderr[-3000:] + "\nunknown hub calls: " + json.dumps(hub.unknown)
    assert "pushed to datasets/tester/tiny-reviews" in done.stdout
    files = hub.repos["tester/tiny-reviews"]
    shards = [path for path in files if path.startswith("data/train-") and path.endswith(".parquet")]
    assert len(shards) == 1
    table = pq.read_table(io.BytesIO(files[shards[0]]))
    assert table.num_rows == 22
    features = Features.from_arrow_schema(table.schema)
    assert features["label"].names == LABELS  # ClassLabel survives the trip in the parquet schema
    assert files["README.md"].decode().startswith("---\nlicense: other\n")
    assert "## Human review" in files["README.md"].decode()


def test_export_without_a_hub_is_one_error_line(tmp_path: Path, cli) -> None:
    _reviewed_project(tmp_path)
    done = cli(
        "export",
        "--task",
        TASK,
        "--mode",
        "few_shot",
        "--push-to-hub",
        "tester/x",
        cwd=tmp_path,
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 3 and done.stderr.startswith("error: push to the hub repo 'tester/x' failed")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize("mode, field", [("attributed", "attributes"), ("targeted", "target")])
def test_export_keeps_what_the_strategy_asked_for_as_json(tmp_path: Path, mode: str, field: str) -> None:
    from datasets import load_from_disk

    layout = write_project(tmp_path, modes=("zero_shot", mode))
    rows = {row["text"]: row for row in synthetic_rows(mode)}
    export_dataset(TASK, mode, params(tmp_path, ("zero_shot", mode)), layout)
    train = load_from_disk(str(layout.export(TASK, mode)))["train"]
    assert train.num_rows == len(rows)
    for exported in train:
        assert json.loads(exported["strategy_provenance"]) == {field: rows[exported["text"]][field]}
        assert exported["mode"] == mode
