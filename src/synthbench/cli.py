"""``synthbench`` CLI: one subcommand per pipeline stage (what dvc.yaml calls) plus helpers. No logic lives
here: options are mapped to stage functions, and SynthbenchError becomes one line on stderr + an exit code."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from synthbench.errors import SynthbenchError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Can LLM-generated data replace labelled data for your text classifier?",
)
cache_app = typer.Typer(no_args_is_help=True, help="Inspect and prune the LLM answer journal.")
app.add_typer(cache_app, name="cache")

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="Params file (DVC's params.yaml).")]
T = TypeVar("T")


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except SynthbenchError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.secho("interrupted: finished work is journaled; re-run to resume", err=True)
        raise typer.Exit(130) from None


def _params(path: Path) -> Any:
    from synthbench.config import load_params

    return load_params(path)


def _echo_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


@app.command()
def prepare(
    task: Annotated[str, typer.Option(help="Task name.")], params: ParamsOption = Path("params.yaml")
) -> None:
    """Real data → data/real/<task>/{train,test}.jsonl + stats.json."""
    from synthbench.prepare import run_prepare

    stats = _run(lambda: run_prepare(task, _params(params)))
    typer.echo(f"prepared {task}: {stats['n_train']} train / {stats['n_test']} test rows")


@app.command()
def generate(
    task: Annotated[str, typer.Option(help="Task name.")],
    mode: Annotated[str, typer.Option(help="zero_shot or few_shot.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """LLM → data/synthetic/<task>/<mode>.jsonl (+ summary JSON and provenance card)."""
    from synthbench.generation.stage import run_generate

    summary = _run(lambda: run_generate(task, mode, _params(params)))
    client = summary["client"]
    typer.echo(
        f"generated {task}/{mode}: {summary['n_rows']} rows; calls {client.get('calls_made')} "
        f"(journal {client.get('cached')}); rejected {summary['rejected'] or 'none'}"
        + (f"; SHORT: {summary['short_labels']}" if summary["short_labels"] else "")
    )


@app.command()
def train(
    task: Annotated[str, typer.Option(help="Task name.")],
    condition: Annotated[str, typer.Option(help="real, zero_shot or few_shot.")],
    backbone: Annotated[str, typer.Option(help="Backbone name (minilm-l6, bert-base-uncased, ...).")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Fine-tune → models/<task>/<condition>/<backbone>/ + an MLflow run and registered model."""
    from synthbench.training.stage import run_train

    manifest = _run(lambda: run_train(task, condition, backbone, _params(params)))
    typer.echo(
        f"trained {task}/{condition}/{backbone}: best epoch {manifest['best_epoch']}, "
        f"val {manifest['best_val']}, run {manifest['mlflow_run_id']}"
    )


@app.command()
def evaluate(
    task: Annotated[str, typer.Option(help="Task name.")],
    condition: Annotated[str, typer.Option(help="Training condition.")],
    backbone: Annotated[str, typer.Option(help="Backbone name.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Score a trained model on the real test set → results/<task>/<condition>/<backbone>/."""
    from synthbench.evaluation.stage import run_evaluate

    metrics = _run(lambda: run_evaluate(task, condition, backbone, _params(params)))
    typer.echo(
        f"{task}/{condition}/{backbone}: macro_f1={metrics['macro_f1']:.4f} accuracy={metrics['accuracy']:.4f}"
    )


@app.command()
def champion(params: ParamsOption = Path("params.yaml")) -> None:
    """Point the MLflow alias ``champion`` at each task's best evaluated model → reports/champions.json."""
    from synthbench.evaluation.compare import set_champions

    champions = _run(lambda: set_champions(_params(params)))
    for task, entry in champions.items():
        where = entry.get("uri") or entry.get("note", "")
        typer.echo(f"{task}: {entry['condition']}/{entry['backbone']} macro_f1={entry['macro_f1']:.4f} → {where}")


@app.command()
def analyze(params: ParamsOption = Path("params.yaml")) -> None:
    """Every result → reports/report.{md,html} (figures/, plots/, tables/, analysis.json) and reports/summary.*."""
    from synthbench.analysis.stage import run_analyze

    result = _run(lambda: run_analyze(_params(params)))
    typer.echo(Path("reports/summary.md").read_text(encoding="utf-8"))
    typer.echo(f"Full report: {result['report']} and reports/report.html")


@app.command("tasks")
def list_tasks(params: ParamsOption = Path("params.yaml")) -> None:
    """List known tasks (built-in and custom) with labels and subjectivity."""
    from synthbench.tasks import available_tasks, load_task

    def show() -> None:
        custom = _params(params).custom_tasks if params.exists() else {}
        for name in available_tasks(custom):
            spec = load_task(name, custom)
            typer.echo(
                f"{name:26s} {'★' * spec.subjectivity:5s} {spec.source.kind:5s} {', '.join(spec.label_names)}"
            )

    _run(show)


@cache_app.command("stats")
def cache_stats(params: ParamsOption = Path("params.yaml")) -> None:
    """Counts, tokens and cost in the journal, by task/mode/model."""
    from synthbench.generation.journal import Journal
    from synthbench.stores import journal_path

    def show() -> None:
        with Journal(journal_path(_params(params).generate.journal)) as journal:
            _echo_json(journal.stats())

    _run(show)


@cache_app.command("prune")
def cache_prune(
    params: ParamsOption = Path("params.yaml"),
    task: Annotated[str | None, typer.Option(help="Only this task's answers.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's answers.")] = None,
    older_than_days: Annotated[float | None, typer.Option(help="Only answers older than this.")] = None,
) -> None:
    """Delete journaled answers (they will be paid for again if needed)."""
    from synthbench.generation.journal import Journal
    from synthbench.stores import journal_path

    def prune() -> int:
        with Journal(journal_path(_params(params).generate.journal)) as journal:
            return journal.prune(task=task, model=model, older_than_days=older_than_days)

    typer.echo(f"pruned {_run(prune)} answers")


@cache_app.command("merge")
def cache_merge(
    sources: Annotated[list[Path], typer.Argument(help="Other machines' journal.sqlite files.")],
    into: Annotated[Path | None, typer.Option(help="Destination journal; default: this project's.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Merge other machines' journals into this one: every answer once, none lost (a shared key keeps ours)."""
    from synthbench.generation.journal_merge import merge_journals
    from synthbench.stores import journal_path

    destination = into or _run(lambda: journal_path(_params(params).generate.journal))
    for report in _run(lambda: merge_journals(destination, sources)):
        typer.echo(
            f"{report.source}: {report.answers} answers, {report.added} new, {report.already_present} already "
            f"here ({report.differing} with another text: kept this journal's); {report.batch_jobs_added} batch jobs"
        )


def main() -> None:
    # Offline by default where the hub cannot be reached is the user's choice; we only silence noise.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    app()


if __name__ == "__main__":
    main()
