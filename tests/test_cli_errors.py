"""Bad input exits non-zero with ONE line naming the file/key and the fix, and leaves no partial output."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml
from tests.conftest import REPO_ROOT

TOY_SPEC = {
    "name": "toy",
    "description": "toy sentiment",
    "subjectivity": 2,
    "labels": [{"name": "pos", "description": "good"}, {"name": "neg", "description": "bad"}],
    "source": {"kind": "local", "files": {"train": "train.csv", "test": "test.csv"}},
    "prompt": {"context": "You write reviews.", "generation": "Write {label_instruction} about {style}."},
}
GOOD_TRAIN = "text,label\n" + "".join(f"good movie {i},pos\nbad movie {i},neg\n" for i in range(5))


def project(
    tmp_path: Path,
    train_csv: str = GOOD_TRAIN,
    test_csv: str = "text,label\nnice,pos\nawful,neg\n",
    **updates: object,
) -> Path:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params.update(tasks=["toy"], custom_tasks={"toy": "toy.yaml"}, task_files={"specs": ".", "data": "."})
    params["prepare"]["min_chars"] = 1
    params.update(updates)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(TOY_SPEC))
    (tmp_path / "train.csv").write_text(train_csv)
    (tmp_path / "test.csv").write_text(test_csv)
    return tmp_path


def assert_one_line_error(done, *fragments: str) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def no_outputs(root: Path) -> bool:
    return not any((root / "data").rglob("*")) if (root / "data").exists() else True


def test_unknown_task(cli, tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    done = cli("prepare", "--task", "bbc_nwes", cwd=tmp_path)
    assert_one_line_error(done, "unknown task 'bbc_nwes'", "did you mean 'bbc_news'")
    assert done.returncode == 2 and no_outputs(tmp_path)


@pytest.mark.parametrize(
    ("updates", "fragments"),
    [
        ({"train": {"epochs": "many"}}, ("params.yaml", "train.epochs")),
        ({"generate": {"per_lable": 5}}, ("params.yaml", "unknown key 'generate.per_lable'")),
    ],
)
def test_malformed_params(cli, tmp_path: Path, updates: dict, fragments: tuple[str, ...]) -> None:
    root = project(tmp_path, **updates)
    done = cli("prepare", "--task", "toy", cwd=root)
    assert_one_line_error(done, *fragments)
    assert done.returncode == 2 and no_outputs(root)


def test_missing_column(cli, tmp_path: Path) -> None:
    root = project(tmp_path, train_csv="sentence,label\nhi,pos\n")
    done = cli("prepare", "--task", "toy", cwd=root)
    assert_one_line_error(done, "train.csv", "missing column 'text'")
    assert no_outputs(root)


def test_label_not_in_spec(cli, tmp_path: Path) -> None:
    root = project(tmp_path, train_csv=GOOD_TRAIN + "so-so movie,neutral\n")
    done = cli("prepare", "--task", "toy", cwd=root)
    assert_one_line_error(done, "train.csv", "'neutral'", "label_map")
    assert no_outputs(root)


def test_empty_split(cli, tmp_path: Path) -> None:
    root = project(tmp_path, test_csv="text,label\n")
    done = cli("prepare", "--task", "toy", cwd=root)
    assert_one_line_error(done, "test.csv", "empty")
    assert no_outputs(root)


def test_unreachable_endpoint_leaves_no_synthetic_file(cli, tmp_path: Path) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["generate"]
    params["endpoint"].update(kind="openai", base_url="http://127.0.0.1:9/v1", max_retries=1, timeout_s=2)
    params["per_label"] = 2
    root = project(tmp_path, generate=params)
    assert cli("prepare", "--task", "toy", cwd=root).returncode == 0
    done = cli("generate", "--task", "toy", "--mode", "zero_shot", cwd=root)
    assert_one_line_error(done, "127.0.0.1:9")
    assert done.returncode == 4
    assert not (root / "data" / "synthetic").exists() or not any(
        (root / "data" / "synthetic").rglob("*.jsonl")
    )


@pytest.mark.parametrize(
    "signum, code, what",
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted (Ctrl-C)")],
)
def test_an_interrupt_inside_an_import_is_reported_as_the_interrupt(
    signum: int, code: int, what: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal that lands while a C extension initialises surfaces as ``ImportError: initialization failed``
    (seen on CI: a SIGTERM 1.2 s after start, during scikit-learn's import); it must read as the interrupt."""
    import typer

    from synthbench import cli

    monkeypatch.setitem(cli._TERMINATED, "signal", 0)
    previous = signal.signal(signal.SIGTERM, cli._on_sigterm)

    def interrupted_import() -> None:
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler's KeyboardInterrupt lands here
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None  # as CPython's C-extension import does
        raise AssertionError("no interrupt arrived")

    try:
        with pytest.raises(typer.Exit) as exit_info:
            cli._run(interrupted_import)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_info.value.exit_code == code
    err = capsys.readouterr().err
    assert f"error: {what}: answers that arrived are journaled" in err and "internal error" not in err
