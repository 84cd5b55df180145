"""The pilot's one page: the verdict per mode first, then each signal in plain words and one table."""

from __future__ import annotations

from typing import Any

from synthbench.analysis.report import Block, Bullets, Heading, Paragraph, Table
from synthbench.analysis.verdict import mode_name


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def signal_sentences(mode: str, entry: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """The reasons behind a verdict, one plain sentence per signal."""
    fid, pred, cost = entry["fidelity"], entry["prediction"], entry["cost"]
    out = [
        f"label fidelity: a classifier fit on real rows reads {_pct(fid['overall'])} of the pilot rows as their "
        f"intended label (it gets {_pct(fid['oracle_accuracy'])} of real validation rows right)"
    ]
    out += [
        f"{_pct(share)} of `{intended}` rows read as `{read}`"
        for intended, read, share in fid["confusions"][:3]
    ]
    auc = entry["distinguishability_auc"]
    out.append(
        "distinguishability: too few rows to cross-validate"
        if auc is None
        else f"distinguishability: a real-vs-synthetic classifier reaches AUC {auc:.2f} (0.50 = cannot tell them "
        "apart)"
    )
    if entry["diversity_ratio"] is not None:
        out.append(
            f"diversity: {entry['diversity_ratio']:.2f}× real (Remote-Clique); closeness to real "
            f"{entry['closeness']:.2f} (mean top-5 cosine similarity)"
        )
    out.append(
        f"worth: {report['pilot_rows_per_label']} pilot rows per label score {100 * pred['pilot_score']:.1f} "
        f"Macro-F1 on real validation rows, as much as ≈ {pred['worth_rows']:.0f} real rows per label; at "
        f"{report['full_rows_per_label']} rows per label the full run is predicted at "
        f"{100 * pred['synthetic']:.1f} vs {100 * pred['real']:.1f} for real data"
    )
    hours = "" if cost["full_hours"] is None else f", ≈ {cost['full_hours']:.2f} h at this endpoint's rate"
    out.append(
        f"cost: the full run needs ≈ {cost['full_requests']} requests (${cost['full_usd_online']:.2f} online, "
        f"${cost['full_usd_batch']:.2f} with the Batch API{hours}); the pilot asked "
        f"{cost['pilot_requests']} of them ({_pct(cost['pilot_share_of_full'])}), which the full run reuses"
    )
    return out


def pilot_blocks(report: dict[str, Any]) -> list[Block]:
    """The report's blocks (rendered to Markdown and HTML by :mod:`synthbench.analysis.report`)."""
    task = report["task"]
    blocks: list[Block] = [
        Heading(f"Pilot: {task}", 1),
        Paragraph(
            f"{report['pilot_rows_per_label']} generated rows per label, scored with cheap classifiers (frozen "
            f"MiniLM embeddings + logistic regression) on the real train split only: {report['real_fit_rows']} "
            f"rows to fit, {report['real_validation_rows']} to validate. The test split is not read. The "
            "predicted gap is real − synthetic Macro-F1 of the full run, uncalibrated, with a 95% bootstrap "
            "interval over the validation rows."
        ),
    ]
    rows = []
    for mode, entry in report["modes"].items():
        pred = entry["prediction"]
        blocks.append(Heading(f"{mode_name(mode)}: {entry['verdict'].upper()}"))
        blocks.append(Paragraph(entry["reason"][0].upper() + entry["reason"][1:] + "."))
        blocks.append(Bullets(signal_sentences(mode, entry, report)))
        auc = entry["distinguishability_auc"]
        rows.append(
            [
                mode_name(mode),
                entry["verdict"],
                f"{100 * pred['gap']:+.1f} [{100 * pred['gap_low']:+.1f}, {100 * pred['gap_high']:+.1f}]",
                _pct(entry["fidelity"]["overall"]),
                "n/a" if auc is None else f"{auc:.2f}",
                "n/a" if entry["diversity_ratio"] is None else f"{entry['diversity_ratio']:.2f}",
                f"{pred['worth_rows']:.0f}",
                f"${entry['cost']['full_usd_online']:.2f}",
            ]
        )
    blocks.append(Heading("All modes"))
    blocks.append(
        Table(
            [
                "mode",
                "verdict",
                "gap, points [95%]",
                "fidelity",
                "AUC",
                "diversity",
                "worth (real rows)",
                "full $",
            ],
            rows,
        )
    )
    return blocks
