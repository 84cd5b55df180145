"""Provenance card of a synthetic dataset (``<mode>.card.md``): what made it, and what it cost."""

from __future__ import annotations

from synthbench.generation.strategies import GenerationStrategy, SampleSlot
from synthbench.records import GenerationSummary
from synthbench.redact import redact
from synthbench.tasks.spec import TaskSpec


def render_card(
    record: GenerationSummary, *, spec: TaskSpec, strategy: GenerationStrategy, diversity_every: int
) -> str:
    """Markdown card; everything in it passes through ``redact`` (it is a DVC output, shared with the data)."""
    summary = record.model_dump()
    client = summary.get("client", {})
    first = SampleSlot(spec.label_names[0], 0)
    example = strategy.messages(first)
    lines = [
        f"# Synthetic dataset card: {summary['task']} / {summary['mode']}",
        "",
        "| field | value |",
        "|---|---|",
        f"| endpoint | {summary['endpoint']} |",
        f"| model | `{summary['model']}` |",
        f"| strategy | {strategy.name} (prompt id `{summary['prompt_id']}`) |",
        f"| how it prompts | {_cell(strategy.describe())} |",
        f"| sampling | {summary['sampling']} |",
        f"| structured output | {_structured(summary.get('response_format'))} |",
        f"| seed | {summary['seed']} (per-request seeds derived from it) |",
        f"| rows | {summary['n_rows']} (target {summary['per_label_target']} per label) |",
        f"| accepted per label | {summary['accepted_per_label']} |",
        f"| short labels | {summary['short_labels'] or 'none'} |",
        f"| rejected by reason | {summary['rejected'] or 'none'} |",
        f"| label consistency | {_consistency_note(summary.get('label_consistency'))} |",
        *_proposal_rows(summary.get("attribute_proposal")),
        f"| calls made / answered from journal | {client.get('calls_made', '?')} / {client.get('cached', '?')} |",
        f"| tokens in / out | {client.get('prompt_tokens', '?')} / {client.get('completion_tokens', '?')} |",
        f"| cost (USD) | {client.get('cost_usd', 0.0)}{_price_note(summary)} |",
        f"| wall time (s) | {summary['wall_seconds']} |",
        "",
        "## Prompt (first request of the first label)",
        "",
        *[f"**{m['role']}**: {m['content']}" + "\n" for m in example],
        f"Diversity prompt every {diversity_every} outputs:",
        "",
        f"> {spec.prompt.diversity}",
        "",
    ]
    return redact("\n".join(lines))


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|")


def _structured(response_format: dict | None) -> str:
    if response_format is None:
        return "off"
    kind = response_format.get("type")
    return f"response_format {kind}: `text` constrained to the task's text_format pattern"


def _price_note(summary: dict) -> str:
    if summary.get("endpoint_mode") == "batch":
        return f" at the Batch API price ({summary.get('price_factor', 0.5):g} × the synchronous price)"
    return ""


def _consistency_note(oracle: dict | None) -> str:
    if not oracle:
        return "off"
    return (
        f"a real-data oracle ({oracle['folds']}-fold cross-fitted, out-of-fold accuracy "
        f"{oracle['oracle_cv_accuracy']:.1%} on {oracle['n_real']} real train rows) rejects a text it reads as "
        f"another label with p ≥ {oracle['threshold']:g}"
    )


def _proposal_rows(proposal: dict | None) -> list[str]:
    if not proposal:
        return []
    shown = proposal["attributes"] or "built-in defaults"
    return [f"| attribute proposal | {_cell(proposal['note'])}: {_cell(str(shown))} |"]
