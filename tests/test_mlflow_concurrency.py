"""Two queued DVC experiments train at the same moment on the same rows and log the same MLflow dataset.

MLflow's SQL store checks for the dataset and then inserts it; without ``tracking.log_shared_input`` the run that
loses the race fails with ``UNIQUE constraint failed: datasets…`` and takes its whole train stage down (seen on
CI as a ``dvc queue`` experiment ending 'Failed'). Here real processes race on one real SQLite store, released
together by a shared start time; checked by hand: with plain ``mlflow.log_input`` 3 of 4 processes failed in 2
of 3 trials.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RACER = """
import sys, time
import mlflow
import pandas as pd
from synthbench.tracking import log_shared_input

uri, start = sys.argv[1], float(sys.argv[2])
mlflow.set_tracking_uri(uri)
mlflow.set_experiment("race")
frame = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]})
dataset = mlflow.data.from_pandas(frame, source="/data/train.jsonl", targets="label", name="t/real", digest="d1")
with mlflow.start_run():
    while time.time() < start:
        pass
    log_shared_input(dataset, context="training", tags={"synthbench.condition": "real"})
print("logged")
"""


def test_runs_logging_the_same_new_dataset_at_once_all_succeed_and_share_one_row(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Create the store and experiment first, so the racers contend only on the dataset insert.
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import mlflow; mlflow.set_tracking_uri({uri!r}); mlflow.set_experiment('race')",
        ],
        check=True,
        capture_output=True,
    )
    start = time.time() + 15  # after every racer has imported mlflow (2 cores: ~5-10 s for four at once)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, uri, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [racer.communicate(timeout=120) for racer in racers]
    assert all(r.returncode == 0 for r in racers), "\n".join(err[-800:] for _, err in outcomes)
    assert [out.strip() for out, _ in outcomes] == ["logged"] * 4
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:
        datasets = conn.execute("SELECT name, digest FROM datasets").fetchall()
        links = conn.execute("SELECT COUNT(*) FROM inputs WHERE destination_type = 'RUN'").fetchone()[0]
    assert datasets == [("t/real", "d1")]
    assert links == 4  # every run is linked to that one dataset row
