"""The prepare stage as its ``dvc.yaml`` stanza declares it: params ``seed``, ``prepare``, the task's spec
(``custom_tasks`` / the built-in file), its ``local_sources`` entry and ``task_files``; writes ``data/real/<task>/``."""

from __future__ import annotations

from synthbench.config import LocalSource, PrepareParams, inside_folder
from synthbench.data.io import write_json, write_jsonl
from synthbench.data.sources import load_raw
from synthbench.errors import ConfigError
from synthbench.layout import LAYOUT, Layout
from synthbench.prepare.splits import build_real_splits
from synthbench.tasks import TaskSpec
from synthbench.tasks.snapshot import write_task_snapshot


def run_prepare(
    spec: TaskSpec,
    *,
    seed: int,
    prepare: PrepareParams,
    local_source: LocalSource | None,
    data_folder: str = ".",
    layout: Layout = LAYOUT,
) -> dict[str, object]:
    """Load, clean, cap and write a task's real splits and its spec snapshot. Returns the stats.
    ``data_folder`` (params ``task_files.data``) must hold a custom task's local files: it is prepare's DVC dep."""
    if spec.source.kind == "local":
        outside = [path for path in spec.source.files.values() if not inside_folder(path, data_folder)]
        if outside:
            raise ConfigError(
                f"task {spec.name}: source.files {outside} are not inside task_files.data ({data_folder}), the "
                f"folder prepare declares as a DVC dep; move them there or set task_files.data in params.yaml"
            )
    raw, origins = load_raw(spec, local_source)
    prepared = build_real_splits(spec, raw, origins, prepare, seed)
    task = spec.name
    write_jsonl(layout.real(task, "train"), ({"text": t, "label": lab} for t, lab in prepared.train))
    write_jsonl(layout.real(task, "test"), ({"text": t, "label": lab} for t, lab in prepared.test))
    write_json(layout.real_stats(task), prepared.stats)
    write_task_snapshot(spec, layout.task_spec(task))
    write_json(layout.labels(task), spec.label_names)
    return prepared.stats
