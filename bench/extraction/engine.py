"""`extract`: plan what is missing, then run the prepare/embed/commit stages on an engine."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.data.files import UNREADABLE_FOLDER
from bench.encoders.spec import EncoderSpec
from bench.extraction.plan import Plan, make_plan
from bench.extraction.settings import ExtractionSettings
from bench.naming import encoder_slug, safe_part
from bench.store import Store

if TYPE_CHECKING:
    from bench.data import ResolvedDataset


@dataclass
class ExtractionSummary:
    dataset: str
    encoder: str
    images: int = 0  # items run through the encoder in this call
    rows_written: int = 0
    rows_skipped: int = 0  # already in the store
    rejects: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)  # decoded, but the decoder warned
    seconds: float = 0.0
    forward_seconds: float = 0.0  # of `seconds`, the time spent in this encoder's forward passes

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.dataset} x {self.encoder}: {self.images} images in {self.seconds:.1f} s "
            f"({self.images_per_second:.1f} img/s), {self.rows_written} rows written, "
            f"{self.rows_skipped} already stored, {len(self.rejects)} rejected"
        )


def extract(
    dataset: "ResolvedDataset",
    specs: Sequence[EncoderSpec] | EncoderSpec,
    processings: Sequence[str],
    store: Store,
    *,
    splits: Sequence[str] = ("train", "val"),
    settings: ExtractionSettings = ExtractionSettings(),
    rebuild: bool = False,
    rejects_dir: Path | None = None,
    console: Console | None = None,
) -> dict[str, ExtractionSummary]:
    """Embed every (record, processing) that an encoder's table lacks; one pass over the images
    feeds every encoder. Returns a summary per encoder."""
    console = console or Console(stderr=True)
    specs = [specs] if isinstance(specs, EncoderSpec) else list(specs)
    plan = make_plan(dataset, specs, processings, store, splits=splits, seed=settings.seed, precision=settings.precision, rebuild=rebuild)
    for note in plan.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for reject in plan.rejects:
        if reject["reason"].startswith(UNREADABLE_FOLDER):
            console.print(f"[yellow]warning:[/yellow] {escape(reject['path'])}: {escape(reject['reason'])}")
    summaries = {
        target.spec.name: ExtractionSummary(plan.dataset, target.spec.name, rows_skipped=plan.stored[target.spec.name],
                                            rejects=[{"image_id": "", "split": "", "processing": "", **r} for r in plan.rejects])
        for target in plan.targets
    }
    if plan.items:
        started = time.perf_counter()
        if settings.engine == "ray":
            from bench.extraction import distributed

            distributed.run(plan, settings, store, summaries, console)
        else:
            from bench.extraction import local

            local.run(plan, settings, store, summaries, console)
        for summary in summaries.values():
            summary.seconds = time.perf_counter() - started
    for summary in summaries.values():
        _finish(summary, rejects_dir, console, quiet=not plan.items and not summary.rejects)
    return summaries


def progress_bar(console: Console) -> Progress:
    """The bar every engine shows: items done, items/s, time left."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]:>7.1f} img/s"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)


def record_problem(summaries: dict[str, ExtractionSummary], plan: Plan, item, kind: str, message: str) -> None:
    """A reject ("rejects") or a decoder warning ("warnings") of one item, in the summary of every
    encoder that needed it."""
    entry = {"image_id": item.record.image_id, "split": item.record.split, "processing": item.op.name,
             "path": item.record.path, "reason": message}
    for t in item.targets:
        getattr(summaries[plan.targets[t].spec.name], kind).append(entry)


def _finish(summary: ExtractionSummary, rejects_dir: Path | None, console: Console, quiet: bool = False) -> None:
    if (summary.rejects or summary.warnings) and rejects_dir is not None:
        path = _write_rejects(rejects_dir, summary)
        if summary.rejects:
            console.print(f"{len(summary.rejects)} rejected images listed in {path}")
        if summary.warnings:
            console.print(f"{len(summary.warnings)} images decoded with warnings (e.g. {summary.warnings[0]['reason']}), listed in {path}")
    if not quiet:
        console.print(summary.line())


def _write_rejects(folder: Path, summary: ExtractionSummary) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_part(summary.dataset)}__{encoder_slug(summary.encoder)}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:  # this run's rejects; a rerun lists them again
        for kind, entries in (("rejected", summary.rejects), ("warning", summary.warnings)):
            for entry in entries:
                handle.write(json.dumps({**entry, "kind": kind}) + "\n")
    return path


__all__ = ["ExtractionSummary", "Plan", "extract"]
