"""The house style of every report page: one self-contained HTML file.

Images are embedded as data URIs and the style is inline, so a page opens
offline, from a mail attachment or an MLflow artifact view alike: nothing is
fetched from a CDN (the GX data docs do that, and show empty tables offline).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from pathlib import Path

from tasks.core.storage import temporary_sibling

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#1b1b1b}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ccc;padding:3px 9px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;display:block;margin:.5em 0}
.note{color:#555;font-size:.92em}.ok{color:#176117;font-weight:600}.bad{color:#a31515;font-weight:600}
.warn{color:#8a5a00}nav a{margin-right:1em}details{margin:.4em 0}summary{cursor:pointer}
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def image(png: bytes, alt: str) -> str:
    """An embedded PNG; ``alt`` names the plot (tests and screen readers find it by that)."""
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table(header: Iterable[str], rows: Iterable[Iterable], left: int = 1) -> str:
    """A table whose first ``left`` columns are text (left-aligned), the rest numbers.
    Cells are escaped unless they are already markup (``Markup``)."""

    def cell(tag: str, i: int, value) -> str:
        cls = ' class="l"' if i < left else ""
        text = value if isinstance(value, Markup) else esc(value)
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class Markup(str):
    """A string that is already HTML: ``table`` does not escape it."""


def verdict(success: bool | None, yes: str = "passed", no: str = "FAILED") -> Markup:
    if success is None:
        return Markup('<span class="warn">not run</span>')
    return Markup(f'<span class="ok">{yes}</span>' if success else f'<span class="bad">{no}</span>')


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def document(title: str, intro: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole page: a title, an introduction, a table of contents and the sections
    (anchor, title, body)."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "\n".join(section(a, t, b) for a, t, b in sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title><style>{STYLE}</style></head>
<body><h1>{esc(title)}</h1>
{intro}
<nav>{nav}</nav>
{body}
</body></html>
"""


def write_page(path: Path, text: str) -> Path:
    """Write atomically: a reader never sees half a report."""
    tmp = temporary_sibling(path, "tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
