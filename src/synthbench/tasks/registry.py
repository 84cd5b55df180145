"""Resolve a task name to a TaskSpec: built-in YAML under ``tasks/builtin``, or a user's YAML file."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from synthbench.errors import ConfigError
from synthbench.tasks.spec import TaskSpec
from synthbench.tasks.templates import TemplateError, check_task_templates


def _format_validation(source: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{source}: {where}: {first['msg']}"


def parse_task(data: Any, source: str) -> TaskSpec:
    """Validate a mapping as a TaskSpec; errors name the file and key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a task spec must be a YAML mapping with name, labels, source, prompt")
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(source, exc) + "; fix the task spec") from None
    try:
        check_task_templates(spec)  # everything that could fail while generating fails now, before paying
    except TemplateError as exc:
        raise ConfigError(f"{source}: {exc}; fix the task spec") from None
    return spec


def load_task_file(path: str | Path) -> TaskSpec:
    spec_path = Path(path)
    if not spec_path.exists():
        raise ConfigError(f"{spec_path}: task spec file not found; fix the path in params.yaml custom_tasks")
    try:
        data = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{spec_path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{spec_path}: cannot read the task spec ({type(exc).__name__}); fix the file"
        ) from None
    return parse_task(data, str(spec_path))


def _builtin_dir() -> Any:
    return resources.files("synthbench.tasks").joinpath("builtin")


def builtin_tasks() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in _builtin_dir().iterdir() if p.name.endswith(".yaml"))


def available_tasks(custom: dict[str, str] | None = None) -> list[str]:
    return sorted(set(builtin_tasks()) | set(custom or {}))


def load_task(name: str, custom: dict[str, str] | None = None) -> TaskSpec:
    """Look ``name`` up among custom task files first (params ``custom_tasks``), then the built-ins."""
    custom = custom or {}
    if name in custom:
        spec = load_task_file(custom[name])
        if spec.name != name:
            raise ConfigError(
                f"{custom[name]}: name is {spec.name!r} but params custom_tasks calls it {name!r}"
            )
        return spec
    resource = _builtin_dir().joinpath(f"{name}.yaml")
    if not resource.is_file():
        known = available_tasks(custom)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown task {name!r}{hint}; known tasks: {', '.join(known)}; or add it under custom_tasks"
        )
    return parse_task(yaml.safe_load(resource.read_text(encoding="utf-8")), f"builtin task {name}")
