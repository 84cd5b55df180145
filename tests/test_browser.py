"""What a person sees, checked in a real headless Chromium (Debian's ``chromium``, driven by Playwright; no
``playwright install``, nothing from the internet): the review page from the keyboard, persisted across a
reload; every figure of ``reports/report.html``; and the MLflow UI on a completed tiny training run.

Set ``SYNTHBENCH_SCREENSHOTS=<folder>`` to also save ``review.png`` and ``report.png`` there. The tests skip,
saying why, only where no browser can be started (CI installs ``chromium`` first: see ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.review_fixtures import LABELS, params, write_project
from tests.test_training_data import TASK

from synthbench.data.reviews import read_decisions
from synthbench.layout import Layout
from synthbench.review.server import ReviewServer
from synthbench.review.session import open_session

pytestmark = pytest.mark.slow
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("SYNTHBENCH_SCREENSHOTS")


def _chromium() -> str | None:
    for candidate in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(candidate)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[review]')")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does it as root)")
    with sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS, headless=True
            )
        except Exception as exc:  # a browser that cannot start here is a skip, with the reason
            pytest.skip(f"Chromium at {executable} did not start: {str(exc).splitlines()[0]}")
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def review_server(tmp_path: Path) -> Iterator[tuple[ReviewServer, Layout]]:
    layout = write_project(tmp_path)
    server = ReviewServer(open_session(TASK, "few_shot", params(tmp_path), layout, n=24))
    server.start_background()
    try:
        yield server, layout
    finally:
        server.shutdown()
        server.server_close()


def _saved(page: Any, count: int) -> None:
    page.wait_for_function(
        f"document.querySelectorAll('.row[data-saved=\"yes\"]').length >= {count}", timeout=15000
    )


def test_review_page_from_the_keyboard_persists_across_a_reload(page: Any, review_server) -> None:
    server, layout = review_server
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='yes']")
    assert page.locator(".row").count() == 24
    assert "oracle: fresh (88%)" in page.locator(".row").all_inner_texts()[0] or any(
        "(88%)" in text for text in page.locator(".oracle").all_inner_texts()
    )
    for key in ("1", "3", "r"):  # ok → next, off-task → next, relabel (stays on the row)
        page.keyboard.press(key)
    page.keyboard.press("j")
    page.keyboard.press("4")  # unnatural
    page.locator(".row").nth(5).locator("button[data-v='wrong_label']").click()  # the mouse works too
    _saved(page, 5)
    assert page.errors == []
    stored = read_decisions(layout.review(TASK, "few_shot"), LABELS)
    assert sorted(d.verdict for d in stored.values()) == [
        "off_task",
        "ok",
        "unnatural",
        "wrong_label",
        "wrong_label",
    ]
    if SHOTS:
        page.locator(".row").nth(2).scroll_into_view_if_needed()
        page.evaluate("window.scrollTo(0, 0)")
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / "review.png"))
    page.reload()
    page.wait_for_selector("body[data-ready='yes']")
    rows = page.locator(".row")
    verdicts = [rows.nth(i).get_attribute("data-verdict") for i in range(6)]
    assert verdicts == ["ok", "off_task", "wrong_label", "unnatural", "", "wrong_label"]
    relabel = rows.nth(2).get_attribute("data-relabel")
    assert relabel in LABELS and relabel != page.locator(".row .label").nth(2).inner_text()
    assert page.locator("#progress").inner_text() == "5 / 24 reviewed"
    assert page.locator(".row.focused").get_attribute("data-index") == "4"  # the first unreviewed row


def test_the_review_page_shows_what_the_strategy_asked_each_row_for(page: Any, tmp_path: Path) -> None:
    modes = ("zero_shot", "attributed", "targeted")
    layout = write_project(tmp_path, modes=modes)
    for mode, expected in (
        ("attributed", {"asked for: tone: dry · length: short", "asked for: tone: gushing · length: short"}),
        ("targeted", {"which a quick classifier read as rotten", "which a quick classifier read as fresh"}),
    ):
        server = ReviewServer(open_session(TASK, mode, params(tmp_path, modes), layout, n=6))
        server.start_background()
        try:
            page.goto(server.url)
            page.wait_for_selector("body[data-ready='yes']")
            asked = page.locator(".row .asked").all_inner_texts()
        finally:
            server.shutdown()
            server.server_close()
        assert len(asked) == 6, asked
        if mode == "attributed":
            assert set(asked) == expected
        else:
            assert {text.split(", ")[-1] for text in asked} == expected
            assert all(text.startswith("asked to work around hard real example #") for text in asked)
    assert page.errors == []


def test_fifty_rows_reviewed_from_the_keyboard_alone(page: Any, tmp_path: Path) -> None:
    layout = write_project(tmp_path, per_label=30)
    server = ReviewServer(
        open_session(TASK, "zero_shot", params(tmp_path), layout)
    )  # the default 50-row sample
    server.start_background()
    try:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='yes']")
        started = time.monotonic()
        for index in range(50):
            page.keyboard.press("2" if index % 10 == 0 else "1")  # each verdict moves on to the next row
        _saved(page, 50)
        assert time.monotonic() - started < 60  # the machine's share of "50 rows in a few minutes"
    finally:
        server.shutdown()
        server.server_close()
    stored = read_decisions(layout.review(TASK, "zero_shot"), LABELS)
    assert len(stored) == 50 and sum(d.verdict == "wrong_label" for d in stored.values()) == 5
    assert page.locator("#progress").inner_text() == "50 / 50 reviewed"


def test_report_html_shows_every_figure_and_the_review_section(
    page: Any, tmp_path: Path, monkeypatch
) -> None:
    from tests.test_analysis_report import FEW_SHOT, build_run, make_params

    from synthbench.analysis.stage import run_analyze
    from synthbench.data.reviews import DecisionStore

    build_run(tmp_path)
    store = DecisionStore(Layout(tmp_path).review("bbc_news", "few_shot"), ["x"])
    for text, verdict in zip(FEW_SHOT, ("ok", "off_task", "ok", "unnatural"), strict=False):
        store.record(text, "x", verdict)
    monkeypatch.chdir(tmp_path)  # the review section reads the current project's files, as in the DVC stage
    run_analyze(make_params(tmp_path), Layout(tmp_path))
    page.goto((tmp_path / "reports" / "report.html").as_uri())
    images = page.evaluate(
        "[...document.images].map(i => ({w: i.naturalWidth, h: i.naturalHeight, "
        "complete: i.complete, alt: i.alt}))"
    )
    assert len(images) >= 3
    assert all(image["complete"] and image["w"] > 0 and image["h"] > 0 for image in images), images
    assert page.get_by_role("heading", name="Human review of synthetic rows").count() == 1
    assert "label noise" in page.locator("body").inner_text()
    assert page.errors == []
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.get_by_role("heading", name="Human review of synthetic rows").scroll_into_view_if_needed()
        page.screenshot(path=str(Path(SHOTS) / "report.png"), full_page=False)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_ui(module_tmp: Path) -> Iterator[dict[str, Any]]:
    """A tiny model trained into a SQLite store, then ``mlflow server`` on it (stopped by PID afterwards)."""
    from tests.test_training_data import tiny_params, write_tiny_task

    from factories import train_stage

    root = module_tmp
    write_tiny_task(root)
    manifest = train_stage(TASK, "real", "minilm-l6", tiny_params(root, epochs=2), root).model_dump(
        mode="json"
    )
    port = _free_port()
    log = (root / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=root,
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
                pytest.fail(f"mlflow server did not answer:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "root": root, "manifest": manifest, "uri": f"sqlite:///{root / 'mlflow.db'}"}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def test_mlflow_ui_lists_registered_models_with_tags_and_per_epoch_metrics(page: Any, mlflow_ui) -> None:
    import mlflow

    name = f"synthbench-{TASK}-real-minilm-l6"
    page.goto(f"{mlflow_ui['url']}/#/models")
    page.get_by_text(name).first.wait_for(timeout=60000)
    page.goto(f"{mlflow_ui['url']}/#/models/{name}/versions/1")
    for tag in ("synthbench.task", "synthbench.condition", "synthbench.backbone", "synthbench.dataset_md5"):
        page.get_by_text(tag).first.wait_for(timeout=30000)
    client = mlflow.MlflowClient(tracking_uri=mlflow_ui["uri"])
    parent = client.get_run(mlflow_ui["manifest"]["mlflow_run_id"])
    child = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )[0]
    history = client.get_metric_history(child.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == [1, 2]  # two epochs, as the UI will chart them
    page.goto(f"{mlflow_ui['url']}/#/experiments/{child.info.experiment_id}/runs/{child.info.run_id}")
    for metric in ("val_macro_f1", "train_loss"):
        page.get_by_text(metric, exact=True).first.wait_for(timeout=30000)
    page.goto(
        f"{mlflow_ui['url']}/#/experiments/{child.info.experiment_id}/runs/{child.info.run_id}/model-metrics"
    )
    page.get_by_text("val_macro_f1").first.wait_for(timeout=30000)
    try:  # the per-epoch charts drew (plotly SVG traces or a canvas, whichever this MLflow uses)
        page.wait_for_selector(
            "canvas, .js-plotly-plot .scatterlayer .trace, svg path.js-line", timeout=30000
        )
    except Exception:
        tags = page.evaluate(
            "[...new Set([...document.querySelectorAll('*')].map(e => e.tagName.toLowerCase() + "
            "'.' + String(e.getAttribute('class') || '').split(' ')[0]))].join(' ')"
        )
        pytest.fail(f"no chart element on the run's metric page; elements seen: {tags[:4000]}")
    assert json.loads(json.dumps(page.errors)) == [] or all("ResizeObserver" in e for e in page.errors)
