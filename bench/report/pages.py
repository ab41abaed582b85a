"""The report's two renderings of the same sections: an HTML page and a Markdown file."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from bench.report import galleries, render
from bench.report.plots import Figure, slug
from bench.tables import Grid


@dataclass
class Section:
    title: str
    intro: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Grid] = field(default_factory=list)
    galleries: list[galleries.Panel] = field(default_factory=list)


def markdown_page(title: str, built: list[Section]) -> str:
    lines = [f"# {title}", "", "Built from the result cells alone; every figure is a PNG beside this file.", ""]
    for section in built:
        lines += [f"## {section.title}", "", section.intro, ""]
        for figure in section.figures:
            lines += [f"![{figure.caption}]({figure.file})", "", f"*{figure.caption}*", ""]
        for table in section.tables:
            lines += render.markdown(table, heading="code")
        for panel in section.galleries:
            lines += galleries.markdown_panel(panel)
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
nav a { margin-right: 1rem; } figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; max-width: 60rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e5e5e5; } th { background: #f6f6f6; text-align: left; }
td.group { font-style: italic; color: #2a6f97; padding-top: .6rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { color: #555; font-size: .85rem; max-width: 60rem; }
code { background: #f3f3f3; padding: 0 .25rem; }
"""


def html_page(title: str, built: list[Section]) -> str:
    anchors = [slug(section.title) for section in built]
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}{galleries.STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Built from the result cells alone. Chance levels are marked on every accuracy figure.</p>",
        "<nav>" + "".join(f'<a href="#{a}">{html.escape(s.title)}</a>' for a, s in zip(anchors, built)) + "</nav>",
    ]
    for anchor, section in zip(anchors, built):
        parts += [f'<h2 id="{anchor}">{html.escape(section.title)}</h2>', f"<p>{html.escape(section.intro)}</p>"]
        for figure in section.figures:
            parts.append(f'<figure><img src="{html.escape(figure.file)}" alt="{html.escape(figure.caption)}">'
                         f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")
        parts += [render.html_table(table) for table in section.tables]
        parts += [galleries.html_panel(panel) for panel in section.galleries]
    parts.append("</body></html>")
    return "\n".join(parts)
