"""A tiny document model (headings, paragraphs, tables, images) with Markdown and HTML
renderers, for the report; table cells that start with a verdict get its CSS class."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ibrepro.claims.verdicts import WORDS


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""  # an id to link to with `[text](#anchor)` in a paragraph or table cell


@dataclass(frozen=True)
class Para:
    text: str  # `code` spans allowed


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass(frozen=True)
class Image:
    src: str
    caption: str


def to_markdown(doc: list) -> str:
    """Render the document as Markdown."""
    lines: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            if block.anchor:
                lines += [f'<a id="{block.anchor}"></a>', ""]
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            lines += [block.text, ""]
        elif isinstance(block, Table):
            cells = lambda row: "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"  # noqa: E731
            lines += [cells(block.header), "|" + "---|" * len(block.header)]
            lines += [cells(row) for row in block.rows] + [""]
        else:
            lines += [f"![{block.caption}]({block.src})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


def to_html(doc: list, title: str) -> str:
    """Render the document as one HTML page (images linked, not inlined)."""
    parts = []
    for block in doc:
        if isinstance(block, Heading):
            anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
            parts.append(f"<h{block.level}{anchor}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(c)}</th>" for c in block.header)
            body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in block.rows)
            parts.append(f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
        else:
            src = html.escape(block.src)
            parts.append(f'<figure><a href="{src}"><img src="{src}" alt="{html.escape(block.caption)}"></a>'
                         f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
    style_sheet = ("body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em}"
                   ".wide{overflow-x:auto;max-width:100%}"
                   "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
                   "padding:.2em .5em;vertical-align:top}img{max-width:100%}"
                   ".supported{background:#d8f0d8}.not-supported{background:#f6d6d6}"
                   ".inconclusive{background:#f6ecc8}.not-applicable,.not-measurable{color:#666}")
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{style_sheet}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def _inline(text: str) -> str:
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    return re.sub(r"\[([^\]]+)\]\((#[\w.-]+)\)", r'<a href="\2">\1</a>', text)


def _td(text: str) -> str:
    verdict = next((v for v in sorted(WORDS, key=len, reverse=True) if text.startswith(v)), None)
    css = f' class="{verdict.replace(" ", "-")}"' if verdict else ""
    return f"<td{css}>{_inline(text)}</td>"
