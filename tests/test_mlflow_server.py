"""Tracking-server mode: a real ``mlflow server`` (SQLite backend, proxied artifacts) on a free loopback port;
the train stage logs to it through MLFLOW_TRACKING_URI and MlflowClient reads the runs and the registered
version back over HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.test_training_data import TASK, tiny_params, write_tiny_task

from factories import train_stage

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(module_tmp: Path) -> Iterator[str]:
    work = module_tmp
    port = free_port()
    log = (work / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{work / 'server.db'}",
            "--artifacts-destination",
            str(work / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server did not answer /health:\n{(work / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_train_logs_to_a_tracking_server_that_mlflowclient_reads_back(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    write_tiny_task(tmp_path)
    params = tiny_params(tmp_path, seeds=[0])  # its sqlite URI is overridden by the environment
    assert params.tracking_uri == mlflow_server
    manifest = train_stage(TASK, "real", "minilm-l6", params, tmp_path).model_dump(mode="json")
    assert not (tmp_path / "mlflow.db").exists()

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    parent = client.get_run(manifest["mlflow_run_id"])
    assert parent.data.params["backbone"] == "minilm-l6" and parent.data.params["train.epochs"] == "1"
    assert parent.data.tags["synthbench.task"] == TASK
    assert parent.data.metrics["val_macro_f1_mean"] == pytest.approx(manifest["best_val"]["val_macro_f1"])
    seed_run = client.get_run(manifest["registered_run_id"])
    assert seed_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert [m.step for m in client.get_metric_history(seed_run.info.run_id, "val_macro_f1")] == [1]
    assert seed_run.inputs.dataset_inputs[0].dataset.digest == manifest["dataset_md5"]
    version = client.get_model_version(manifest["registered_model"], manifest["registered_version"])
    assert version.run_id == seed_run.info.run_id and version.status == "READY"
    assert version.tags["synthbench.condition"] == "real"
    mlflow.set_tracking_uri(mlflow_server)
    info = mlflow.models.get_model_info(
        f"models:/{manifest['registered_model']}/{manifest['registered_version']}"
    )
    assert info.signature is not None and info.saved_input_example_info is not None  # fetched via the server


def test_sqlite_store_keeps_artifacts_beside_its_database_whatever_the_cwd(
    tmp_path: Path, monkeypatch
) -> None:
    import mlflow

    from synthbench import tracking

    store, elsewhere = tmp_path / "store", tmp_path / "cwd"
    store.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tiny_params(store)
    assert params.tracking_uri == f"sqlite:///{store / 'mlflow.db'}"
    with tracking.quiet_mlflow():
        experiment_id = tracking.configure(params.tracking)
        location = mlflow.get_experiment(experiment_id).artifact_location
        assert tracking.configure(params.tracking) == experiment_id  # the second call reuses the experiment
    assert location == (store / "mlruns").as_uri()
    assert tracking.local_artifact_root("http://127.0.0.1:5000") is None
    assert not (elsewhere / "mlruns").exists()
