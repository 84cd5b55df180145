"""Pilot stage: (task) → ``reports/pilot/<task>.{json,md,html}``, a go / borderline / no-go answer per mode before
the full generation is paid for.

``run_pilot`` takes what its ``dvc.yaml`` stanza declares (``seed``, ``modes``, ``generate``, ``pilot``, the task
spec and the real *train* split; never the test split) and reads like the stage: split the real rows, ask for the
first rounds of each mode's full generation (same journal keys: the full run re-asks none of them), embed,
score the signals, predict, write. The pilot's rows are the first ``pilot.rows_per_label`` accepted per label.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from synthbench.analysis.diversity import embed_texts
from synthbench.analysis.embeddings import diversity_table
from synthbench.config import GenerateParams, PilotParams, TrackingParams
from synthbench.data.io import read_jsonl, write_json, write_text
from synthbench.errors import DataError
from synthbench.generation.batch import BATCH_DISCOUNT
from synthbench.generation.client import ChatClient, ChatRequest
from synthbench.generation.journal import Completion, Journal
from synthbench.generation.modes import build_strategy
from synthbench.generation.rounds import Outcome, Plan, collect
from synthbench.generation.stage import (
    attributes_spec,
    endpoint_config,
    label_consistency,
    model_identity,
    open_endpoint,
    quality_filter,
)
from synthbench.layout import LAYOUT, Layout
from synthbench.pilot import signals
from synthbench.pilot.report import pilot_blocks
from synthbench.pilot.verdict import PILOT, REAL_PREFIX, predict, verdict
from synthbench.stores import journal_path
from synthbench.tasks.spec import TaskSpec
from synthbench.tracking import log_pilot


@dataclass
class Recording:
    """Answers every request of the pilot's rounds through ``client`` and keeps each completion (journaled or
    fresh), for the token counts the cost estimate needs."""

    client: ChatClient
    completions: list[Completion] = field(default_factory=list)

    def run(self, requests: Sequence[ChatRequest], on_result: Any = None) -> dict[str, Completion]:
        answers = self.client.run(requests, on_result)
        self.completions.extend(answers[request.key] for request in requests)
        return answers


@dataclass(frozen=True)
class RealSplit:
    """The real train split, cut into a fit part and a validation part (stratified), with embeddings."""

    fit_labels: list[str]
    fit_emb: np.ndarray
    val_labels: list[str]
    val_emb: np.ndarray


def run_pilot(
    task: str,
    *,
    seed: int,
    modes: list[str],
    generate: GenerateParams,
    pilot: PilotParams,
    spec: TaskSpec,
    tracking: TrackingParams | None = None,
    layout: Layout = LAYOUT,
) -> dict[str, Any]:
    """Run the pilot of ``task`` for ``pilot.modes`` (default: every study mode); returns the report's JSON.
    With ``tracking``, its figures and files are also logged to MLflow (:func:`synthbench.tracking.log_pilot`)."""
    real = split_real(layout, task, pilot.val_fraction, seed)
    generated = generate_pilot(
        task, pilot.modes or modes, seed=seed, generate=generate, pilot=pilot, spec=spec, layout=layout
    )
    curve = real_curve(real, pilot.rows_per_label, seed)
    oracle = signals.cheap_classifier(real.fit_emb, real.fit_labels, seed)
    oracle_accuracy = float(np.mean(oracle.predict(real.val_emb) == np.asarray(real.val_labels)))
    report: dict[str, Any] = {
        "task": task,
        "pilot_rows_per_label": pilot.rows_per_label,
        "full_rows_per_label": generate.per_label,
        "real_fit_rows": len(real.fit_labels),
        "real_validation_rows": len(real.val_labels),
        "modes": {},
    }
    for mode, (rows, cost) in generated.items():
        texts, labels = [row["text"] for row in rows], [row["label"] for row in rows]
        emb = embed_texts(texts)
        fidelity = signals.label_fidelity(oracle, emb, labels, oracle_accuracy=oracle_accuracy)
        auc = signals.distinguishability(real.fit_emb, emb, folds=pilot.cv_folds, seed=seed)
        div = diversity_table({"real": real.fit_emb, mode: emb}, seed=seed).set_index("set").loc[mode]
        predictions = {**curve["predictions"], PILOT: pilot_predictions(emb, labels, real, seed)}
        prediction = predict(
            real.val_labels,
            predictions,
            sizes=curve["sizes"],
            pilot_rows=pilot.rows_per_label,
            full_rows=generate.per_label,
            n_labels=len(spec.label_names),
            n_resamples=pilot.bootstrap,
            seed=seed,
        )
        decision, reason = verdict(prediction, go_gap=pilot.go_gap, no_go_gap=pilot.no_go_gap)
        report["modes"][mode] = {
            "verdict": decision,
            "reason": reason,
            "prediction": prediction.as_dict(),
            "fidelity": {
                "overall": fidelity.overall,
                "per_label": fidelity.per_label,
                "confusions": fidelity.confusions,
                "oracle_accuracy": oracle_accuracy,
            },
            "distinguishability_auc": auc,
            "diversity_ratio": _number(div["remote_clique_vs_real"]),
            "closeness": _number(div["closeness"]),
            "rows": len(rows),
            "cost": cost,
        }
    write_report(layout, task, report)
    if tracking is not None:
        files = [layout.pilot(task, kind) for kind in ("json", "md", "html")]
        report["mlflow_run_id"] = log_pilot(tracking, report, files)
    return report


def split_real(layout: Layout, task: str, val_fraction: float, seed: int) -> RealSplit:
    """Prepare's real train split (never the test split), stratified into fit and validation rows."""
    path = layout.real(task, "train")
    rows = read_jsonl(path)
    texts, labels = [str(row["text"]) for row in rows], [str(row["label"]) for row in rows]
    try:
        fit_t, val_t, fit_l, val_l = train_test_split(
            texts, labels, test_size=val_fraction, stratify=labels, random_state=seed
        )
    except ValueError as exc:
        raise DataError(
            f"{path}: too few real rows per label to hold out pilot.val_fraction={val_fraction} ({exc}); "
            "raise prepare.train_per_label or pilot.val_fraction"
        ) from None
    emb = embed_texts([*fit_t, *val_t])
    return RealSplit(list(fit_l), emb[: len(fit_t)], list(val_l), emb[len(fit_t) :])


def real_curve(real: RealSplit, pilot_rows: int, seed: int) -> dict[str, Any]:
    """Cheap classifiers on nested real subsamples: sizes (rows per label) and their validation predictions."""
    counts = [real.fit_labels.count(label) for label in dict.fromkeys(real.fit_labels)]
    sizes = signals.curve_sizes(min(counts), pilot_rows)
    subsets = signals.nested_subsamples(real.fit_labels, sizes, seed)
    labels = np.asarray(real.fit_labels)
    predictions = {
        f"{REAL_PREFIX}{size}": signals.cheap_classifier(real.fit_emb[idx], labels[idx], seed)
        .predict(real.val_emb)
        .tolist()
        for size, idx in subsets.items()
    }
    return {"sizes": sizes, "predictions": predictions}


def pilot_predictions(emb: np.ndarray, labels: list[str], real: RealSplit, seed: int) -> list[str]:
    """The pilot-trained cheap classifier's labels for the real validation rows (one label: that label)."""
    if len(set(labels)) < 2:
        return [labels[0]] * len(real.val_labels)
    return signals.cheap_classifier(emb, labels, seed).predict(real.val_emb).tolist()


def generate_pilot(
    task: str,
    modes: list[str],
    *,
    seed: int,
    generate: GenerateParams,
    pilot: PilotParams,
    spec: TaskSpec,
    layout: Layout,
) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Mode → (the first ``rows_per_label`` accepted rows per label, cost and rate figures). The plan is the full
    run's (``generate.per_label``): the pilot stops between rounds, so its requests are the full run's first."""
    n = pilot.rows_per_label
    out = {}
    # The full run's filters, the oracle included: the pilot's rows are the full run's first rows.
    consistency = label_consistency(generate, spec, layout.real(task, "train"), seed)
    with (
        open_endpoint(generate.endpoint) as base_url,
        Journal(journal_path(generate.journal, layout.root)) as journal,
    ):
        for mode in modes:
            client = ChatClient(endpoint_config(generate, base_url), journal)
            # the full run's attributes (a proposal is journaled: asked once for both)
            mode_spec, _ = attributes_spec(
                mode, spec, generate, client, model_identity(generate.endpoint), seed
            )
            strategy = build_strategy(mode, mode_spec, seed, generate, layout.real(task, "train"))
            batch = generate.endpoint.mode == "batch"
            plan = Plan.build(
                task, mode, mode_spec, strategy, model_identity(generate.endpoint), generate, batch=batch
            )
            if (
                batch
            ):  # the Batch API's first batch quotes nothing: its first n indices per label are the pilot's
                plan.round_size = min(plan.round_size, n)
            cap = math.ceil(n * generate.max_attempts_factor)
            recording = Recording(client)
            started = time.perf_counter()
            outcome = collect(
                plan,
                recording,
                quality_filter(generate, spec),
                until=_enough(n, cap),
                consistency=consistency,
                want_per_label=n,
            )
            rows = [row for label_rows in outcome.accepted.values() for row in label_rows[:n]]
            if not rows:
                raise DataError(
                    f"pilot {task}/{mode}: no generated row passed the filters; fix the task prompt"
                )
            out[mode] = (
                rows,
                cost_figures(
                    recording, outcome, generate, len(spec.label_names), time.perf_counter() - started
                ),
            )
    return out


def _enough(n: int, cap: int) -> Any:
    def enough(out: Outcome) -> bool:
        return all(len(out.accepted[label]) >= n or out.attempts[label] >= cap for label in out.accepted)

    return enough


def cost_figures(
    recording: Recording, outcome: Outcome, generate: GenerateParams, n_labels: int, wall_s: float
) -> dict[str, Any]:
    """Tokens per request, requests per accepted row, the full run's estimated requests, tokens, dollars
    (online and Batch API) and hours at the request rate measured here (None when every answer came from the
    journal), and the pilot's share of the full run's requests."""
    done = recording.completions
    accepted = max(1, len(outcome.rows))
    per_row = sum(outcome.attempts.values()) / accepted
    prompt = float(np.mean([c.prompt_tokens for c in done])) if done else 0.0
    completion = float(np.mean([c.completion_tokens for c in done])) if done else 0.0
    full_requests = math.ceil(generate.per_label * n_labels * per_row)
    dollars = (
        full_requests * (prompt * generate.price_in_per_mtok + completion * generate.price_out_per_mtok) / 1e6
    )
    fresh = recording.client.stats.fresh
    rate = fresh / wall_s if fresh and wall_s > 0 else None
    return {
        "pilot_requests": len(done),
        "pilot_fresh_calls": fresh,
        "prompt_tokens_per_request": round(prompt, 1),
        "completion_tokens_per_request": round(completion, 1),
        "requests_per_accepted_row": round(per_row, 3),
        "full_requests": full_requests,
        "full_usd_online": round(dollars, 4),
        "full_usd_batch": round(dollars * BATCH_DISCOUNT, 4),
        "requests_per_s": round(rate, 3) if rate else None,
        "full_hours": round(full_requests / rate / 3600, 2) if rate else None,
        "pilot_share_of_full": round(len(done) / full_requests, 3) if full_requests else None,
    }


def write_report(layout: Layout, task: str, report: dict[str, Any]) -> None:
    """``reports/pilot/<task>.json`` (every number), ``.md`` and the self-contained ``.html`` (the same blocks)."""
    from synthbench.analysis.report import to_html, to_markdown

    blocks = pilot_blocks(report)
    write_json(layout.pilot(task, "json"), report)
    write_text(layout.pilot(task, "md"), to_markdown(blocks, layout.pilot(task, "md").parent))
    write_text(layout.pilot(task, "html"), to_html(blocks, f"synthbench pilot: {task}"))


def _number(value: Any) -> float | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 4)
    )
