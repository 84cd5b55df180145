"""``synthbench export``: a synthetic set, with the reviews applied, as a Hugging Face ``DatasetDict`` and card.

The ``train`` split holds exactly the synthetic rows a ``<mode>`` training would read before de-duplication:
rows a reviewer rejected are left out and relabelled rows carry their new label. Features: ``text``, ``label``
(``ClassLabel`` with the task's label names, in the task spec's order) and provenance columns — ``generated_label``
(the label the row was generated for), ``review_verdict`` (empty when not reviewed), ``content_hash`` (the
review file's key), ``mode``, ``model``, ``prompt_id``, ``seed``, ``sample_index``, ``request_key`` (the journal key
of the answer) and ``strategy_provenance`` (what the strategy asked for, as a JSON object string: an attributed
row's ``attributes``, a targeted row's ``target``; empty for the paper's modes). The card (``README.md`` beside
the data, and the hub repo's README) is built from the generation summary and provenance card: model, prompt,
sampling, cost, filter rejections, review stats and a licence note.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthbench.config import Params
from synthbench.data.io import read_json, write_text
from synthbench.data.review_stats import ReviewStats, describe_noise, percent, review_stats
from synthbench.data.reviews import REJECTS, content_hash, read_decisions, reviewed_label
from synthbench.errors import DataError, SynthbenchError
from synthbench.layout import Layout
from synthbench.review.sample import read_synthetic
from synthbench.review.session import check_task_mode
from synthbench.tasks import load_task

CARD_NAME = "README.md"
_PROVENANCE_INT = ("seed", "sample_index")
_PROVENANCE_STR = ("mode", "model", "prompt_id", "request_key")
# Row fields a strategy adds (GenerationStrategy.provenance): one JSON string column, since their shape varies.
STRATEGY_FIELDS = ("attributes", "target")


def strategy_provenance(row: dict[str, Any]) -> str:
    """The row's strategy fields as a JSON object string (keys sorted), or "" when it has none."""
    fields = {name: row[name] for name in STRATEGY_FIELDS if name in row}
    return json.dumps(fields, sort_keys=True, ensure_ascii=False) if fields else ""


def reviewed_records(rows: list[dict[str, Any]], decisions: dict[str, Any]) -> list[dict[str, Any]]:
    """The exported rows: one dict per kept synthetic row (see the module docstring), file order kept."""
    out = []
    seen: set[str] = set()
    for row in rows:
        key = content_hash(row["text"])
        if key in seen:  # a repeated text would be a duplicate row in the published set too
            continue
        seen.add(key)
        decision = decisions.get(key)
        label = reviewed_label(row["label"], decision)
        if label is None:
            continue
        out.append(
            {
                "text": row["text"],
                "label": label,
                "generated_label": row["label"],
                "review_verdict": decision.verdict if decision else "",
                "content_hash": key,
                **{
                    name: int(row[name]) if isinstance(row.get(name), int) else -1 for name in _PROVENANCE_INT
                },
                **{name: str(row.get(name) or "") for name in _PROVENANCE_STR},
                "strategy_provenance": strategy_provenance(row),
            }
        )
    return out


def build_dataset(records: list[dict[str, Any]], labels: list[str]) -> Any:
    """``records`` → ``DatasetDict({"train": ...})`` with a ClassLabel ``label`` (names = ``labels``)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "text": Value("string"),
            "label": ClassLabel(names=labels),
            "generated_label": Value("string"),
            "review_verdict": Value("string"),
            "content_hash": Value("string"),
            **{name: Value("int64") for name in _PROVENANCE_INT},
            **{name: Value("string") for name in _PROVENANCE_STR},
            "strategy_provenance": Value("string"),
        }
    )
    columns = {name: [record[name] for record in records] for name in features}
    columns["label"] = [labels.index(label) for label in columns["label"]]
    return DatasetDict({"train": Dataset.from_dict(columns, features=features)})


def _size_category(n: int) -> str:
    return "n<1K" if n < 1_000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M"


def render_card(
    task: str,
    mode: str,
    labels: list[str],
    n_rows: int,
    summary: dict[str, Any] | None,
    provenance: str | None,
    stats: ReviewStats,
    description: str,
    source: str,
) -> str:
    """The dataset card (Markdown with the hub's YAML metadata header)."""
    client = (summary or {}).get("client", {})
    model = (summary or {}).get("model", "unknown")
    header = [
        "---",
        "license: other",
        "license_name: synthetic-data-see-card",
        "task_categories:",
        "- text-classification",
        "language:",
        "- en",
        "tags:",
        "- synthetic",
        "- synthbench",
        "- llm-generated",
        f"size_categories:\n- {_size_category(n_rows)}",
        f"pretty_name: synthbench {task} {mode}",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: data/train-*",
        "---",
        "",
    ]
    review_lines = [f"- {describe_noise(stats)}"]
    for entry in stats.label_rows():
        if entry["reviewed"]:
            review_lines.append(
                f"- `{entry['label']}`: {entry['reviewed']} reviewed, reject rate "
                f"{percent(entry['reject_rate'])} ("
                + ", ".join(f"{reason} {entry[reason]}" for reason in REJECTS)
                + ")"
            )
    lines = [
        *header,
        f"# synthbench {task} / {mode}: LLM-generated text classification data",
        "",
        f"{description.strip()} Labels: {', '.join(f'`{label}`' for label in labels)}. {n_rows} rows in the "
        f"`train` split, generated {mode.replace('_', '-')} by `{model}` with "
        "synthbench and checked by its quality filter"
        + (" and a human review." if stats.n_reviewed else "."),
        "",
        "## Generation",
        "",
        "| field | value |",
        "|---|---|",
        f"| model | `{model}` |",
        f"| endpoint | {(summary or {}).get('endpoint', '?')} |",
        f"| prompt id | `{(summary or {}).get('prompt_id', '?')}` |",
        f"| sampling | {(summary or {}).get('sampling', '?')} |",
        f"| seed | {(summary or {}).get('seed', '?')} |",
        f"| accepted per label | {(summary or {}).get('accepted_per_label', '?')} |",
        f"| tokens in / out | {client.get('prompt_tokens', '?')} / {client.get('completion_tokens', '?')} |",
        f"| cost (USD) | {client.get('cost_usd', '?')} |",
        "",
        "## Filters",
        "",
        "Answers rejected by the quality filter (empty, too short/long, refusals, exact and near duplicates, "
        f"copies of few-shot examples), by reason: {(summary or {}).get('rejected') or 'none'}.",
        "",
        "## Human review",
        "",
        *(review_lines if stats.n_reviewed else ["No rows were reviewed."]),
        "",
        "Rejected rows (wrong label without a correction, off-task, unnatural) are not in this dataset; "
        "relabelled rows carry the reviewer's label (`generated_label` keeps the original). Label noise is the "
        "share of reviewed rows judged wrong-label, with a Wilson score 95% interval.",
        "",
        "## Columns",
        "",
        "`text`, `label` (ClassLabel), `generated_label`, `review_verdict` (empty: not reviewed), `content_hash` "
        "(key of the review file), `model`, `prompt_id`, `seed`, `sample_index`, `request_key` (the request's "
        "hash in synthbench's answer journal).",
        "",
        "## Licence note",
        "",
        f"The texts were written by `{model}`; their use is subject to that model's licence and its provider's "
        "terms (some forbid training competing models). Few-shot prompts showed examples from the real dataset "
        f"({source}), whose licence applies to any fragment copied from it. Check both before redistributing; "
        "`license: other` above says exactly that.",
        "",
    ]
    if provenance:
        lines += ["## Provenance card", "", *provenance.replace("\n# ", "\n### ").splitlines()[1:], ""]
    return "\n".join(lines)


def export_dataset(
    task: str,
    mode: str,
    params: Params,
    layout: Layout,
    out: Path | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """Write the DatasetDict and its card to ``out`` (default ``layout.export(task, mode)``) and optionally
    push both to the hub repo ``push_to_hub``. Returns what was written."""
    labels = check_task_mode(task, mode, params)
    spec = load_task(task, params.custom_tasks)
    rows = read_synthetic(layout.synthetic(task, mode), labels)
    decisions = read_decisions(layout.review(task, mode), labels)
    records = reviewed_records(rows, decisions)
    if not records:
        raise DataError(
            f"{layout.synthetic(task, mode)}: every row was rejected in review; nothing to export"
        )
    summary_path, card_path = layout.synthetic_summary(task, mode), layout.synthetic_card(task, mode)
    summary = read_json(summary_path) if summary_path.exists() else None
    provenance = card_path.read_text(encoding="utf-8") if card_path.exists() else None
    stats = review_stats(task, mode, rows, decisions, labels)
    source = (
        spec.source.path or ", ".join(str(p) for p in (spec.source.files or {}).values()) or spec.source.kind
    )
    card = render_card(task, mode, labels, len(records), summary, provenance, stats, spec.description, source)
    dataset = build_dataset(records, labels)
    target = out or layout.export(task, mode)
    with _quiet_progress():  # the CLI prints one line; progress bars would bury an error line
        dataset.save_to_disk(str(target))
        write_text(target / CARD_NAME, card)
        result = {
            "path": str(target),
            "n_rows": len(records),
            "dropped": len(rows) - len(records),
            "review": stats.as_dict(),
            "pushed": None,
        }
        if push_to_hub:
            result["pushed"] = _push(dataset, card, push_to_hub, private)
    return result


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    import datasets
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    datasets_on, hub_on = datasets.is_progress_bar_enabled(), not are_progress_bars_disabled()
    datasets.disable_progress_bars()
    disable_progress_bars()
    try:
        yield
    finally:
        if datasets_on:
            datasets.enable_progress_bars()
        if hub_on:
            enable_progress_bars()


def _push(dataset: Any, card: str, repo: str, private: bool) -> str:
    """The datasets library's own upload (parquet shards + its README), then our card over its README."""
    from huggingface_hub import HfApi

    try:
        dataset.push_to_hub(repo, private=private, commit_message="synthbench export: data")
        api = HfApi()
        api.upload_file(
            path_or_fileobj=card.encode("utf-8"),
            path_in_repo=CARD_NAME,
            repo_id=repo,
            repo_type="dataset",
            commit_message="synthbench export: dataset card",
        )
    except SynthbenchError:
        raise
    except Exception as exc:  # the hub's errors (auth, network, offline mode) are many classes; name the fix
        message = json.dumps(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise DataError(
            f"push to the hub repo {repo!r} failed: {message}; check HF_TOKEN (huggingface-cli "
            "login), HF_HUB_OFFLINE and the repo name, or export without --push-to-hub"
        ) from None
    return f"datasets/{repo}"
