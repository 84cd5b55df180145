"""The analysis report's "Human review of synthetic rows" section (called from
:func:`synthbench.analysis.sections.report_blocks`), and the review stats of every task/mode it is built from.

Reads ``data/synthetic/<task>/<mode>.jsonl`` and ``data/review/<task>/<mode>.jsonl`` through a
:class:`~synthbench.layout.Layout` (the current directory's by default, as in every stage); a task/mode without
a synthetic file or without decisions is simply not listed.
"""

from __future__ import annotations

from collections.abc import Sequence

from synthbench.analysis.report import Block, Bullets, Heading, Paragraph, Table
from synthbench.data.review_stats import ReviewStats, describe_noise, percent, review_stats
from synthbench.data.reviews import REJECTS, read_decisions
from synthbench.errors import SynthbenchError
from synthbench.layout import LAYOUT, Layout

HEADING = "Human review of synthetic rows"


def collect_stats(tasks: Sequence[str], modes: Sequence[str], layout: Layout = LAYOUT) -> list[ReviewStats]:
    """Stats of every task/mode that has both a synthetic file and at least one decision."""
    from synthbench.data.io import read_jsonl

    found = []
    for task in tasks:
        for mode in modes:
            synthetic, review = layout.synthetic(task, mode), layout.review(task, mode)
            if not synthetic.exists() or not review.exists():
                continue
            try:
                rows = read_jsonl(synthetic)
                decisions = read_decisions(review)
            except SynthbenchError:
                continue  # the stage that owns the file reports it; the report should still be written
            labels = list(dict.fromkeys(str(row.get("label")) for row in rows))
            stats = review_stats(task, mode, rows, decisions, labels)
            if stats.n_reviewed:
                found.append(stats)
    return found


def review_section(tasks: Sequence[str], modes: Sequence[str], layout: Layout = LAYOUT) -> list[Block]:
    """The report blocks: one table of reject rates per label and reason, and the label-noise estimates."""
    stats = collect_stats(tasks, modes, layout)
    blocks: list[Block] = [Heading(HEADING)]
    if not stats:
        return [
            *blocks,
            Paragraph(
                "No synthetic rows have been reviewed: synthbench review --task T --mode M "
                "serves a stratified sample to judge, and dvc repro then retrains on the rows "
                "that pass."
            ),
        ]
    blocks.append(
        Paragraph(
            "A person judged a seeded, label-stratified sample of each synthetic set (synthbench review). Rejected "
            "rows (wrong label, off-task, unnatural) are dropped before training, or relabelled where the reviewer "
            "chose the right label. Label noise = share judged wrong-label, with a Wilson score 95% interval."
        )
    )
    rows = []
    for item in stats:
        for entry in item.label_rows():
            if entry["reviewed"]:
                rows.append(
                    [
                        item.task,
                        item.mode,
                        entry["label"],
                        str(entry["reviewed"]),
                        percent(entry["reject_rate"]),
                        *(str(entry[reason]) for reason in REJECTS),
                    ]
                )
        rows.append(
            [
                item.task,
                item.mode,
                "all",
                str(item.n_reviewed),
                percent(item.reject_rate),
                *(str(sum(e[reason] for e in item.label_rows())) for reason in REJECTS),
            ]
        )
    blocks.append(
        Table(
            ["task", "mode", "label", "reviewed", "reject rate", "wrong label", "off-task", "unnatural"],
            rows,
            numeric=(False, False, False, True, True, True, True, True),
        )
    )
    blocks.append(Bullets([describe_noise(item) for item in stats]))
    return blocks
