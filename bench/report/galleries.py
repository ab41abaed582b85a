"""The report's galleries: each cell's recorded queries and neighbours drawn again from their
source files, under the processing and through the geometry the encoder saw, as small PNGs in
`gallery/` beside the report; one block per query with a row per encoder, so encoders compare
side by side."""

from __future__ import annotations

import hashlib
import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench import processing, tables
from bench.errors import BenchError
from bench.picks import Entry, Picks, Shot
from bench.report import render
from bench.report.captions import GalleryWords
from bench.results import Cell

FOLDER = "gallery"  # beside index.html
PIXELS = 112  # a thumbnail's side on disk; the page shows it at DISPLAY css pixels (sharp on dense screens)
DISPLAY = 88


@dataclass(frozen=True)
class Thumb:
    """One drawn image and its caption."""

    file: str | None  # relative to the report; None when it could not be drawn
    heading: str  # "query", "target", or rank and score
    labels: str
    processing: str = ""  # shown when it is not the file as it is
    shares: bool = False  # the processing is the query's
    kind: str = ""  # "query", "target" (what the query should find) or ""
    problem: str = ""  # why there is no file
    source: str = ""  # the source file, named beside the problem


@dataclass(frozen=True)
class Row:
    encoder: str
    title: str
    outcome: str
    hit: bool
    thumbs: tuple[Thumb, ...]


@dataclass(frozen=True)
class Block:
    """One query, its target if any, and a row per (encoder, database) that shows it."""

    query: Thumb
    target: Thumb | None
    rows: tuple[Row, ...]
    note: str = ""  # which encoders do not show this query


@dataclass(frozen=True)
class Panel:
    legend: str
    blocks: tuple[Block, ...]


@dataclass
class Drawer:
    """Draws each distinct shot once per report into `folder/gallery/`."""

    folder: Path
    warn: Callable[[str], None] | None = None
    drawn: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def __call__(self, shot: Shot, view: Picks) -> tuple[str | None, str]:
        """(file relative to the report, "") or (None, why it could not be drawn)."""
        identity = json.dumps([shot.image_id, shot.path, shot.crop, shot.capture, shot.orient, shot.processing,
                               view.size, view.interpolation])
        name = f"{FOLDER}/{hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()}.png"
        if name not in self.drawn:
            try:
                draw(shot, view).save(self.folder / name, optimize=True)
                self.drawn[name] = (name, "")
            except (OSError, ValueError, SyntaxError, BenchError) as error:  # a missing or unreadable source file
                reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
                self.drawn[name] = (None, reason)
                if self.warn is not None:
                    self.warn(f"gallery: cannot draw {shot.image_id} ({shot.path}: {reason}); the report shows a placeholder")
        return self.drawn[name]


def draw(shot: Shot, view: Picks):
    """The shot as the encoder saw it (extraction's own prepare stage: decode, processing,
    resize and centre crop, after-crop ops), scaled down to a PIXELS-wide PNG image."""
    from PIL import Image

    from bench.extraction.prepare import InputShape, prepare  # torch loads only when a gallery is drawn

    seen = InputShape(view.size, view.interpolation)
    pixels = prepare(shot.record(), processing.get(shot.processing), [seen]).pixels[seen]
    return Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize((PIXELS, PIXELS), Image.Resampling.LANCZOS)


def reset(folder: Path) -> None:
    """Remove the thumbnails of an earlier report in the same folder."""
    shutil.rmtree(folder / FOLDER, ignore_errors=True)


def _thumb(drawer: Drawer, shot: Shot, view: Picks, query: Shot, heading: str, kind: str = "") -> Thumb:
    file, problem = drawer(shot, view)
    shown = "" if shot.processing == "original" else shot.processing
    return Thumb(file, heading, " · ".join(shot.labels), shown, shown != "" and shot.processing == query.processing and kind != "query",
                 kind or ("target" if shot.target else ""), problem, shot.path if problem else "")


def _heading(shot: Shot) -> str:
    return f"#{shot.rank} · {shot.score:.3f}" if shot.rank is not None and shot.score is not None else ""


def panels(cells: list[Cell], words: GalleryWords, folder: Path, warn: Callable[[str], None] | None = None) -> list[Panel]:
    """The galleries the cells hold (in the order given), as one panel: a block per query, a row
    per encoder and database that shows it, captioned by the task's `words`."""
    found = [(cell, cell.picks) for cell in cells if cell.picks is not None]
    if not found:
        return []
    (folder / FOLDER).mkdir(parents=True, exist_ok=True)
    drawer = Drawer(folder, warn)
    order: dict[tuple[str, str, str], list[tuple[Cell, Picks, Entry]]] = {}
    for cell, view in found:
        for entry in view.entries:
            key = (entry.query.image_id, entry.query.processing, entry.target.image_id if entry.target else "")
            order.setdefault(key, []).append((cell, view, entry))
    blocks = []
    for shown in order.values():
        _, view, entry = shown[0]
        rows = tuple(
            Row(cell.encoder, words.title(strip, own_entry, cell), words.outcome(strip), strip.hit,
                tuple(_thumb(drawer, shot, own, entry.query, _heading(shot)) for shot in strip.shots))
            for cell, own, own_entry in shown for strip in own_entry.strips
        )
        showing = {cell.encoder for cell, _, _ in shown}
        missing = [cell.encoder for cell, _ in found if cell.encoder not in showing]
        blocks.append(Block(
            _thumb(drawer, entry.query, view, entry.query, "query", "query"),
            _thumb(drawer, entry.target, view, entry.query, "target", "target") if entry.target else None,
            rows, f"Not among the queries chosen for {', '.join(missing)}." if missing else "",
        ))
    bold = any(thumb.shares for block in blocks for row in block.rows for thumb in row.thumbs)
    legend = words.legend([cell for cell, _ in found])
    return [Panel(legend + (" A processing in bold is the query's." if bold else ""), tuple(blocks))]


STYLE = f"""
.gallery {{ margin: 1rem 0 1.5rem; }} .gallery h3 {{ font-size: 1rem; margin: 1.5rem 0 .3rem; }} .gallery .legend {{ color: #555; font-size: .85rem; max-width: 60rem; }}
.gallery-block {{ display: flex; gap: .8rem; border-top: 1px solid #e5e5e5; padding: .6rem 0; }}
.gallery-block .anchor {{ display: flex; gap: 4px; flex: none; align-items: flex-start; }}
.gallery-block .rows {{ flex: 1; min-width: 0; }}
.gallery-block .row-head {{ font-size: .8rem; margin: .35rem 0 .15rem; }}
.gallery-block .strip {{ display: flex; flex-wrap: wrap; gap: 4px; }}
.thumb {{ margin: 0; width: {DISPLAY}px; }}
.thumb figcaption {{ font-size: 10.5px; line-height: 1.3; color: #444; overflow-wrap: anywhere; margin-top: 1px; }}
.thumb img, .thumb .missing {{ width: {DISPLAY}px; height: {DISPLAY}px; display: block; box-sizing: border-box; border: 3px solid #fff; }}
.thumb.query img {{ border-color: #1f77b4; }} .thumb.target img, .thumb.target .missing {{ border-color: #2ca02c; }}
.thumb .missing {{ background: #f1f1f1; color: #a33; font-size: 9px; padding: 3px; overflow: hidden; }}
.gallery .hit {{ color: #2a7d2a; }} .gallery .miss {{ color: #b22222; }} .gallery .note {{ color: #777; font-size: .8rem; }}
"""


def _thumb_html(thumb: Thumb) -> str:
    if thumb.file:
        picture = f'<img src="{html.escape(thumb.file)}" width="{DISPLAY}" height="{DISPLAY}" alt="{html.escape(thumb.labels)}">'
    else:
        picture = (f'<div class="missing" title="{html.escape(thumb.source)}: {html.escape(thumb.problem)}">no image: '
                   f"{html.escape(thumb.problem)}<br>{html.escape(Path(thumb.source).name)}</div>")
    lines = [html.escape(thumb.heading), html.escape(thumb.labels)]
    if thumb.processing:
        lines.append(f"<b>{html.escape(thumb.processing)}</b>" if thumb.shares else html.escape(thumb.processing))
    return f'<figure class="thumb {thumb.kind}">{picture}<figcaption>{"<br>".join(line for line in lines if line)}</figcaption></figure>'


def html_panel(panel: Panel) -> str:
    parts = ['<div class="gallery">', "<h3>Gallery</h3>", f'<p class="legend">{html.escape(panel.legend)}</p>']
    for block in panel.blocks:
        anchor = _thumb_html(block.query) + (_thumb_html(block.target) if block.target else "")
        parts.append(f'<div class="gallery-block"><div class="anchor">{anchor}</div><div class="rows">')
        for row in block.rows:
            verdict = "hit" if row.hit else "miss"
            parts.append(f'<div class="row-head"><b>{html.escape(row.encoder)}</b> · {html.escape(row.title)} — '
                         f'<span class="{verdict}">{html.escape(row.outcome)}</span></div>'
                         f'<div class="strip">{"".join(_thumb_html(thumb) for thumb in row.thumbs)}</div>')
        if block.note:
            parts.append(f'<p class="note">{html.escape(block.note)}</p>')
        parts.append("</div></div>")
    parts.append("</div>")
    return "\n".join(parts)


def _thumb_markdown(thumb: Thumb) -> str:
    picture = f"![{thumb.labels}]({thumb.file})" if thumb.file else f"(no image: {thumb.source}: {thumb.problem})"
    processing = f"**{thumb.processing}**" if thumb.shares else thumb.processing
    heading = f"{thumb.heading} ✓" if thumb.kind == "target" and thumb.heading != "target" else thumb.heading
    return "<br>".join(part for part in (picture, heading, thumb.labels, processing) if part)


def markdown_panel(panel: Panel) -> list[str]:
    lines = ["### Gallery", "", panel.legend + " Here ✓ marks what the HTML report frames in green.", ""]
    for block in panel.blocks:
        width = max((len(row.thumbs) for row in block.rows), default=0)
        lines.append(" ".join(_thumb_markdown(thumb) for thumb in (block.query, block.target) if thumb))
        rows = [[row.encoder, row.title, row.outcome, *(_thumb_markdown(thumb) for thumb in row.thumbs), *[""] * (width - len(row.thumbs))]
                for row in block.rows]
        lines += ["", *render.markdown(tables.grid("", ["encoder", "database", "outcome", *map(str, range(1, width + 1))], rows,
                                                   caption=block.note, numbers=()))]
    return lines
