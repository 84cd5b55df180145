"""A report as a list of blocks (heading, paragraph, bullets, table, figure), rendered to Markdown and to one
self-contained HTML file (figures inlined as base64 ``data:`` URIs, CSS inline, no scripts, no external
resources). Both renderings come from the same blocks, so they always say the same thing."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric: Sequence[bool] = field(default_factory=tuple)  # right-align these columns; default: all but 1st

    def aligned(self) -> list[bool]:
        return list(self.numeric) if self.numeric else [False] + [True] * (len(self.header) - 1)


@dataclass(frozen=True)
class Figure:
    path: Path  # a PNG file
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85rem; color: #555; }
""".strip()


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    """Markdown; figure links are relative to ``base`` (the folder the .md file is written to)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            lines = [
                "| " + " | ".join(_cell(h) for h in block.header) + " |",
                "|" + "|".join("---:" if numeric else "---" for numeric in block.aligned()) + "|",
            ]
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            relative = (
                block.path.relative_to(base).as_posix() if block.path.is_relative_to(base) else block.path
            )
            out.append(f"![{block.caption}]({relative})\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained HTML page; every text is HTML-escaped."""
    esc = html.escape
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            aligned = block.aligned()
            head = "".join(f"<th>{esc(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>"
                + "".join(
                    f'<td class="num">{esc(c)}</td>' if aligned[k] else f"<td>{esc(c)}</td>"
                    for k, c in enumerate(row)
                )
                + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Figure):
            body.append(
                f'<figure><img src="{data_uri(block.path)}" alt="{esc(block.caption)}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
