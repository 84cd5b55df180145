"""params.yaml validation: wrong types, unknown keys and pasted secrets fail with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthbench.conditions import GENERATION_MODES
from synthbench.config import load_params
from synthbench.errors import ConfigError

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def base() -> dict:
    return yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))


def test_repo_params_validate_and_keep_offline_default() -> None:
    params = load_params(REPO_PARAMS)
    assert params.tasks == ["bbc_news", "rotten_tomatoes"]
    assert params.generate.endpoint.kind == "embedded"
    assert params.backbones == ["minilm-l6"]
    assert params.conditions == params.expected_conditions
    assert {"real", "zero_shot", "few_shot", "real+few_shot", "real_n50"} <= set(params.conditions)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p["train"].update(epochs="three"), "train.epochs"),
        (lambda p: p["generate"].update(temprature=0.7), "unknown key 'generate.temprature'"),
        (lambda p: p.update(extra_section={}), "unknown key 'extra_section'"),
        (lambda p: p["generate"]["endpoint"].update(api_key_env="sk-live-abc123"), "NAME of an environment"),
        (
            lambda p: (
                p.update(conditions=["real", "zero_shot"], mixes=[])
                or p["train"].update(learning_curve_sizes=[])
            ),
            "conditions must list 'real', every mode, real+<mix> for every mix and real_n<N> for every "
            "train.learning_curve_sizes entry: ['real', 'zero_shot', 'few_shot'], got ['real', 'zero_shot']",
        ),
        (
            lambda p: p.update(mixes=["few_shot"]) or p["train"].update(learning_curve_sizes=[30]),
            "['real', 'zero_shot', 'few_shot', 'real+few_shot', 'real_n30'], got",
        ),
        (
            lambda p: p.update(modes=["zero_shot"], mixes=["few_shot"], conditions=["real", "zero_shot"]),
            "mixes ['few_shot'] are not among the modes ['zero_shot']",
        ),
        (lambda p: p.pop("tasks"), "missing key 'tasks'"),
    ],
)
def test_bad_params_name_file_and_key(tmp_path: Path, mutate, expected: str) -> None:
    data = base()
    mutate(data)
    with pytest.raises(ConfigError) as excinfo:
        load_params(write(tmp_path, data))
    message = str(excinfo.value)
    assert expected in message
    assert str(tmp_path / "params.yaml") in message
    assert "\n" not in message


def test_pasted_key_never_echoed(tmp_path: Path) -> None:
    data = base()
    data["generate"]["endpoint"]["api_key_env"] = "sk-live-SECRET-VALUE"
    with pytest.raises(ConfigError) as excinfo:
        load_params(write(tmp_path, data))
    assert "SECRET" not in str(excinfo.value)
    assert "sk-live" not in str(excinfo.value)


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_params(path)


def test_paper_profile_validates_with_mixes_curve_and_seeds() -> None:
    params = load_params(REPO_PARAMS.parent / "profiles" / "paper.yaml")
    assert len(params.tasks) == 10 and params.mixes == ["zero_shot", "few_shot"]
    assert set(params.conditions) == set(params.expected_conditions)
    assert "real_n1000" in params.conditions and len(params.train.seed_list) == 3


def test_strategies_profile_validates_with_every_mode_and_the_targeted_mix() -> None:
    params = load_params(REPO_PARAMS.parent / "profiles" / "strategies.yaml")
    assert params.modes == list(GENERATION_MODES) and params.mixes == ["targeted"]
    assert set(params.conditions) == set(params.expected_conditions)
    assert (
        {"tweet_irony", "sarcasm_news", "humor_speech"}
        <= set(params.tasks)
        <= set(params.local_sources)
        | {
            "bbc_news",
            "rotten_tomatoes",
        }
    )
    assert params.train.seed_list == [0, 1, 2]


def test_calibration_profile_pilots_eight_tasks_at_a_tenth_of_the_full_run() -> None:
    params = load_params(REPO_PARAMS.parent / "profiles" / "calibration.yaml")
    assert len(params.tasks) >= 8 and set(params.tasks) <= set(params.local_sources) | {
        "bbc_news",
        "rotten_tomatoes",
    }
    assert set(params.conditions) == set(params.expected_conditions) == {"real", "zero_shot", "few_shot"}
    assert params.generate.per_label >= 100 and params.train.seed_list == [0, 1, 2]
    assert params.pilot.rows_per_label <= params.generate.per_label / 10  # the pilot costs ≤ 10% of the run


def test_a_mode_typo_names_params_modes_and_every_valid_mode(tmp_path: Path) -> None:
    data = base()
    data.update(modes=["zero_shot", "grounde"], conditions=["real", "zero_shot", "grounde"], mixes=[])
    data["train"].update(learning_curve_sizes=[])
    with pytest.raises(ConfigError) as excinfo:
        load_params(write(tmp_path, data))
    message = str(excinfo.value)
    assert "unknown generation mode 'grounde' (did you mean 'grounded'?)" in message
    assert "params.yaml modes" in message and "zero_shot, few_shot, grounded, attributed" in message
    assert "\n" not in message


def test_new_modes_are_conditions_and_mixes_but_not_the_default(tmp_path: Path) -> None:
    data = base()
    data.update(
        modes=["zero_shot", "grounded", "attributed"],
        mixes=["grounded"],
        conditions=["real", "zero_shot", "grounded", "attributed", "real+grounded", "real_n50"],
    )
    params = load_params(write(tmp_path, data))
    assert params.expected_conditions == [
        "real",
        "zero_shot",
        "grounded",
        "attributed",
        "real+grounded",
        "real_n50",
    ]
    assert load_params(REPO_PARAMS).modes == ["zero_shot", "few_shot"]
