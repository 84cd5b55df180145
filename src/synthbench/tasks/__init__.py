"""Task registry: built-in specs (the paper's ten + two offline ones) and user YAML specs, by name."""

from synthbench.tasks.registry import available_tasks, load_task
from synthbench.tasks.spec import LabelSpec, PromptSpec, SourceSpec, TaskSpec

__all__ = ["LabelSpec", "PromptSpec", "SourceSpec", "TaskSpec", "available_tasks", "load_task"]
