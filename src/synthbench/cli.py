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
TaskOption = Annotated[str, typer.Option(help="Task name.")]
ConditionOption = Annotated[str, typer.Option(help="real, a mode, real+<mode> or real_n<N>.")]
ModeOption = Annotated[
    str, typer.Option(help="Generation mode: zero_shot, few_shot, grounded or attributed.")
]
BackboneOption = Annotated[str, typer.Option(help="Backbone name (minilm-l6, bert-base-uncased, ...).")]
T = TypeVar("T")


_TERMINATED = {"signal": 0}  # set by the SIGTERM handler: the interrupt then exits 143, not 130
_STATE = {"in_run": False}  # inside _run, an interrupt is a KeyboardInterrupt that lets the work wind down


def _run(action: Callable[[], T]) -> T:
    """Run a command: every failure ends here as one ``error:`` line (secrets redacted) and an exit code."""
    from synthbench.errors import translate_library_error
    from synthbench.redact import redact

    def fail(message: str, code: int) -> typer.Exit:
        typer.secho(f"error: {' '.join(redact(message).split())}", err=True, fg=typer.colors.RED)
        return typer.Exit(code)

    import signal

    try:  # Python's own SIGINT handling inside _run: asyncio turns it into a clean cancellation
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread
        previous = None
    _STATE["in_run"] = True
    try:
        return action()
    except SynthbenchError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise _interrupted() from None
    except typer.Exit:
        raise
    except Exception as exc:  # a library's exception at an edge: one line, never a traceback
        if _TERMINATED["signal"] or _caused_by_interrupt(exc):
            # The interrupt landed inside a library (a C extension being imported turns it into "ImportError:
            # initialization failed"): what failed is the interruption, and it is reported as one.
            raise _interrupted() from None
        if os.environ.get("SYNTHBENCH_DEBUG"):
            raise
        error = translate_library_error(exc)
        raise fail(str(error), error.exit_code) from None
    finally:
        _STATE["in_run"] = False
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _interrupted() -> typer.Exit:
    """The one line and exit code of an interrupted command: 143 after SIGTERM, 130 after Ctrl-C."""
    code = 128 + _TERMINATED["signal"] if _TERMINATED["signal"] else 130
    what = "terminated (SIGTERM)" if _TERMINATED["signal"] else "interrupted (Ctrl-C)"
    typer.secho(f"error: {what}: answers that arrived are journaled; re-run to resume", err=True)
    return typer.Exit(code)


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in ``exc``'s chain (its cause or the exception it was raised during)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (DVC, a scheduler, our parent's death) takes Ctrl-C's path: asyncio cancels cleanly, the answers
    in flight are journaled, the embedded server is stopped; the exit code is then 143."""
    import signal

    if not _STATE["in_run"]:
        _outside_run(signum, frame)
    _TERMINATED["signal"] = signum
    signal.raise_signal(signal.SIGINT)


def _outside_run(signum: int, frame: object) -> None:
    """An interrupt before or after the work (parsing, imports): nothing to save; one line and the exit code."""
    what = "terminated (SIGTERM)" if signum != 2 else "interrupted (Ctrl-C)"
    typer.secho(f"error: {what} while no stage work was in progress; nothing to save", err=True)
    os._exit(128 + signum)


def _params(path: Path) -> Any:
    from synthbench.config import load_params
    from synthbench.errors import ConfigError

    try:
        return load_params(path)
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise ConfigError(
            f"{path}: cannot be read as UTF-8 YAML ({type(exc).__name__}); fix the file"
        ) from None


def _echo_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def _spec(task: str, params: Path) -> Any:
    """A task's spec as prepare saved it: what every stage after prepare reads (and declares in dvc.yaml)."""
    from synthbench.layout import LAYOUT
    from synthbench.tasks.snapshot import read_task_snapshot

    _known_task(task, params, LAYOUT.task_spec(task))
    return read_task_snapshot(LAYOUT.task_spec(task))


def _known_task(task: str, params: Path, snapshot: Path) -> None:
    """A task with no snapshot that params.yaml does not list is a typo: say so (did you mean …) rather than
    'run prepare' (params are read only on this error path, so no stage reads a key it does not declare)."""
    if snapshot.exists():
        return
    from synthbench.errors import ConfigError
    from synthbench.registry import Registry

    tasks = list(_params(params).tasks)
    if task not in tasks:
        raise ConfigError(
            Registry("task", "fix --task or params.yaml tasks", dict.fromkeys(tasks)).unknown(task)
        )


def _labels(task: str, params: Path) -> list[str]:
    """A task's label names as prepare saved them: all that training reads of the spec."""
    from synthbench.data.io import read_json
    from synthbench.layout import LAYOUT

    _known_task(task, params, LAYOUT.labels(task))
    return list(read_json(LAYOUT.labels(task)))


@app.command()
def prepare(task: TaskOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Real data → data/real/<task>/{train,test}.jsonl + stats.json + task.json (the spec snapshot)."""
    from synthbench.prepare import run_prepare
    from synthbench.tasks import load_task

    def run() -> dict[str, Any]:
        p = _params(params)
        spec = load_task(task, p.custom_tasks)
        return run_prepare(
            spec,
            seed=p.seed,
            prepare=p.prepare,
            local_source=p.local_sources.get(task),
            data_folder=p.task_files.data,
        )

    stats = _run(run)
    typer.echo(f"prepared {task}: {stats['n_train']} train / {stats['n_test']} test rows")


@app.command()
def generate(
    task: TaskOption,
    mode: ModeOption,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """LLM → data/synthetic/<task>/<mode>.jsonl (+ summary JSON and provenance card)."""

    def stage() -> Any:
        from synthbench.generation.stage import run_generate

        loaded = _params(params)
        return run_generate(task, mode, seed=loaded.seed, generate=loaded.generate, spec=_spec(task, params))

    summary = _run(stage)
    client = summary.client
    typer.echo(
        f"generated {task}/{mode}: {summary.n_rows} rows; calls {client.get('calls_made')} "
        f"(journal {client.get('cached')}); rejected {summary.rejected or 'none'}"
        + (f"; SHORT (allowed): {summary.short_labels}" if summary.short_labels else "")
    )


@app.command()
def pilot(task: TaskOption, params: ParamsOption = Path("params.yaml")) -> None:
    """A go / borderline / no-go answer before the full generation: reports/pilot/<task>.{json,md,html}."""

    def stage() -> Any:
        from synthbench.pilot.stage import run_pilot

        loaded = _params(params)
        return run_pilot(
            task,
            seed=loaded.seed,
            modes=list(loaded.modes),
            generate=loaded.generate,
            pilot=loaded.pilot,
            spec=_spec(task, params),
            tracking=loaded.tracking,
        )

    report = _run(stage)
    for mode, entry in report["modes"].items():
        gap = entry["prediction"]
        typer.echo(
            f"pilot {task}/{mode}: {entry['verdict'].upper()}: predicted gap {100 * gap['gap']:+.1f} points "
            f"[{100 * gap['gap_low']:+.1f}, {100 * gap['gap_high']:+.1f}]; {entry['cost']['pilot_requests']} "
            f"requests ({entry['cost']['pilot_fresh_calls']} sent) → reports/pilot/{task}.md"
        )


@app.command()
def train(
    task: TaskOption,
    condition: ConditionOption,
    backbone: BackboneOption,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Fine-tune → models/<task>/<condition>/<backbone>/ + an MLflow run and registered model."""
    from synthbench.training.stage import run_train

    def run() -> Any:
        p = _params(params)
        return run_train(
            task, _labels(task, params), condition, backbone, train=p.train, tracking_params=p.tracking
        )

    manifest = _run(run)
    typer.echo(
        f"trained {task}/{condition}/{backbone}: best epoch {manifest.best_epoch}, "
        f"val {manifest.best_val}, run {manifest.mlflow_run_id}"
    )


@app.command()
def evaluate(
    task: TaskOption,
    condition: ConditionOption,
    backbone: BackboneOption,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Score a trained model on the real test set → results/<task>/<condition>/<backbone>/."""
    from synthbench.evaluation.stage import run_evaluate

    metrics = _run(lambda: run_evaluate(task, condition, backbone, tracking_params=_params(params).tracking))
    typer.echo(
        f"{task}/{condition}/{backbone}: macro_f1={metrics.macro_f1:.4f} accuracy={metrics.accuracy:.4f}"
    )


@app.command()
def champion(params: ParamsOption = Path("params.yaml")) -> None:
    """Point the MLflow alias ``champion`` at each task's best evaluated model → reports/champions.json."""
    from synthbench.evaluation.compare import run_champion

    def run() -> dict[str, Any]:
        p = _params(params)
        return run_champion(p.tasks, p.conditions, p.backbones, tracking_params=p.tracking)

    for task, entry in _run(run).items():
        where = entry.get("uri") or entry.get("note", "")
        typer.echo(
            f"{task}: {entry['condition']}/{entry['backbone']} macro_f1={entry['macro_f1']:.4f} → {where}"
        )


@app.command()
def analyze(params: ParamsOption = Path("params.yaml")) -> None:
    """Every result → reports/report.{md,html} (figures/, plots/, tables/, analysis.json) and reports/summary.*."""
    from synthbench.analysis.stage import Study, run_analyze

    def run() -> dict[str, Any]:
        p = _params(params)
        tasks = list(p.tasks)
        study = Study(
            tasks=tasks,
            modes=list(p.modes),
            conditions=list(p.conditions),
            backbones=list(p.backbones),
            seed=p.seed,
            specs={task: _spec(task, params) for task in tasks},
            settings=p.analysis,
        )
        return run_analyze(study)

    result = _run(run)
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


def _journal_path(params: Path) -> Path:
    """The journal: ``$SYNTHBENCH_JOURNAL`` or ``generate.journal`` (see :mod:`synthbench.stores`)."""
    from synthbench.stores import journal_path

    return journal_path(_params(params).generate.journal)


@cache_app.command("stats")
def cache_stats(params: ParamsOption = Path("params.yaml")) -> None:
    """Counts, tokens and cost in the journal, by task/mode/model."""
    from synthbench.generation.journal import Journal

    def show() -> None:
        with Journal(_journal_path(params)) as journal:
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

    def prune() -> int:
        with Journal(_journal_path(params)) as journal:
            return journal.prune(task=task, model=model, older_than_days=older_than_days)

    typer.echo(f"pruned {_run(prune)} answers")


@cache_app.command("check")
def cache_check(
    params: ParamsOption = Path("params.yaml"),
    salvage: Annotated[
        bool, typer.Option(help="Move a damaged journal aside and keep every answer that reads back.")
    ] = False,
) -> None:
    """Verify the journal (SQLite integrity check); with --salvage, rebuild a damaged one from what reads."""
    from synthbench.errors import JournalError
    from synthbench.generation.journal_check import check_journal, salvage_journal

    def check() -> None:
        path = _journal_path(params)
        if not path.exists():
            typer.echo(f"{path}: no journal yet (nothing journaled)")
            return
        report = salvage_journal(path) if salvage else check_journal(path)
        if report.salvaged_to:
            typer.echo(f"{path}: salvaged {report.kept} answers; the damaged file is {report.salvaged_to}")
        elif report.ok:
            typer.echo(f"{path}: ok, {report.answers} answers")
        else:
            raise JournalError(
                f"{path}: {report.problem}; run `synthbench cache check --salvage` to keep what reads"
            )

    _run(check)


@app.command()
def review(
    task: TaskOption,
    mode: ModeOption,
    params: ParamsOption = Path("params.yaml"),
    n: Annotated[int, typer.Option("--n", help="Rows to review, stratified by intended label.")] = 50,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Create (if missing) and validate the review file; no server (the DVC review stage).",
        ),
    ] = False,
) -> None:
    """Judge a sample of synthetic rows in the browser → data/review/<task>/<mode>.jsonl (see the page's keys)."""
    from synthbench.layout import LAYOUT
    from synthbench.review.server import ReviewServer
    from synthbench.review.session import open_session, prepare_store

    if check:
        decisions = _run(lambda: prepare_store(task, mode, LAYOUT))
        typer.echo(f"review {task}/{mode}: {len(decisions)} decisions in {LAYOUT.review(task, mode)}")
        return
    session = _run(lambda: open_session(task, mode, _params(params), LAYOUT, n=n))
    server = _run(lambda: ReviewServer(session, port=port))
    typer.echo(
        f"reviewing {len(session.rows)} of {session.n_synthetic} rows of {task}/{mode} at {server.url} "
        f"(decisions → {session.store.path}); Ctrl-C to stop"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo(f"stopped; {len(session.store.all())} decisions in {session.store.path}")
    finally:
        server.server_close()


@app.command()
def export(
    task: TaskOption,
    mode: ModeOption,
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path | None, typer.Option(help="Folder (default exports/<task>/<mode>).")] = None,
    push_to_hub: Annotated[
        str | None, typer.Option(help="Also push to this hub dataset repo (user/name).")
    ] = None,
    private: Annotated[bool, typer.Option(help="Create the hub repo private.")] = False,
) -> None:
    """Reviewed synthetic rows → a datasets.DatasetDict (ClassLabel, provenance columns) + dataset card."""
    from synthbench.layout import LAYOUT
    from synthbench.review.export import export_dataset

    result = _run(lambda: export_dataset(task, mode, _params(params), LAYOUT, out, push_to_hub, private))
    typer.echo(
        f"exported {result['n_rows']} rows ({result['dropped']} dropped in review) to {result['path']}"
        + (f"; pushed to {result['pushed']}" if result["pushed"] else "")
    )


@cache_app.command("merge")
def cache_merge(
    sources: Annotated[list[Path], typer.Argument(help="Other machines' journal.sqlite files.")],
    into: Annotated[Path | None, typer.Option(help="Destination journal; default: this project's.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Merge other machines' journals into this one: every answer once, none lost (a shared key keeps ours)."""
    from synthbench.generation.journal_merge import merge_journals

    destination = into or _run(lambda: _journal_path(params))
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
    import signal

    from synthbench.generation.engine_process import die_with_parent
    from synthbench.lifeline import die_with_stage_runner

    signal.signal(signal.SIGTERM, _on_sigterm)
    # DVC (or whoever ran us) died: stop as on SIGTERM, leaving nothing running. Opt out for a parent that
    # starts us from a short-lived thread (the kernel signals when the forking thread ends).
    if not os.environ.get("SYNTHBENCH_NO_PDEATHSIG"):
        die_with_parent(signal.SIGTERM)
        die_with_stage_runner(signal.SIGTERM)  # DVC behind a shell that does not exec us (dash)
    signal.signal(signal.SIGINT, _outside_run)  # until _run starts: parsing and imports
    app()


if __name__ == "__main__":
    main()
