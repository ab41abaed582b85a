"""`extract`: plan what is missing, let an engine run the prepare and embed stages batch by
batch, and count and commit what each batch yields in this one place."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

from rich.console import Console
from rich.markup import escape

from bench.data.files import UNREADABLE_FOLDER
from bench.encoders.spec import EncoderSpec
from bench.extraction import estimate
from bench.extraction.commit import BatchOutcome, Committer
from bench.extraction.plan import Plan, make_plan
from bench.extraction.settings import ExtractionSettings
from bench.extraction.summary import ExtractionSummary
from bench.progress import Stage
from bench.store import Store

if TYPE_CHECKING:
    import pyarrow as pa

    from bench.data import ResolvedDataset


class Engine(Protocol):
    """Runs the prepare and embed stages of a plan's items; made once its models have loaded."""

    def batches(self, schemas: dict[int, "pa.Schema"]) -> Iterator[BatchOutcome]: ...

    def close(self) -> None: ...


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
    plan_only: bool = False,
) -> dict[str, ExtractionSummary]:
    """Embed every (record, processing) that an encoder's table lacks; one pass over the images
    feeds every encoder. Returns a summary per encoder. `plan_only`: change nothing; print what is
    stored and missing per encoder, the disk and the time it would take here (measured on a few
    items), and stop."""
    console = console or Console(stderr=True)
    specs = [specs] if isinstance(specs, EncoderSpec) else list(specs)
    plan = make_plan(dataset, specs, processings, store, splits=splits, precision=settings.precision, rebuild=rebuild, dry=plan_only)
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
    if plan_only:
        estimate.show(plan, console, estimate.measure(plan, settings) if plan.items else None)
        return summaries
    if plan.items:
        estimate.show(plan, console)  # the plan's summary opens every run that has work to do
        started = time.perf_counter()
        if settings.engine == "ray":
            from bench.extraction.distributed import RayEngine  # Ray loads only for --engine ray

            engine: Engine = RayEngine(plan, settings, store)
        else:
            from bench.extraction.local import LocalEngine  # torch loads only when there is work

            engine = LocalEngine(plan, settings)
        drive(plan, engine, store, settings, summaries, console)
        for summary in summaries.values():
            summary.seconds = time.perf_counter() - started
    for summary in summaries.values():
        summary.report(rejects_dir, console, quiet=not plan.items and not summary.rejects)
    return summaries


def drive(plan: Plan, engine: Engine, store: Store, settings: ExtractionSettings, summaries: dict[str, ExtractionSummary],
          console: Console) -> None:
    """Create the tables the plan writes to (only now: the engine's models have loaded), run the
    engine's batches, and record, count and commit each outcome."""
    try:
        working = plan.working()
        targets = {t: plan.targets[t] for t in working}
        schemas = {t: store.prepare(plan.dataset, target.spec.name, target.spec.embed_dim, target.fingerprint) for t, target in targets.items()}
        committers = {t: Committer(store, plan.dataset, target.spec.name, schemas[t], settings.commit_seconds, since=plan.since[target.spec.name])
                      for t, target in targets.items()}
        names = ", ".join(target.spec.name for target in targets.values())
        done = 0
        description = f"extract {plan.dataset} x {names}" + (" (ray)" if settings.engine == "ray" else "")
        with Stage(console, description, len(plan.items), unit="images") as progress:
            for outcome in engine.batches(schemas):
                for index, kind, message in outcome.problems:
                    _record_problem(summaries, plan, index, kind, message)
                for t, share in outcome.embedded.items():
                    summary = summaries[targets[t].spec.name]
                    summary.images += share.count
                    summary.forward_seconds += share.forward_seconds
                    committers[t].add(share)
                done += outcome.finished
                progress.update(completed=done)
        for t, committer in committers.items():
            committer.close()
            summaries[targets[t].spec.name].rows_written += committer.written
    finally:
        engine.close()


def _record_problem(summaries: dict[str, ExtractionSummary], plan: Plan, index: int, kind: str, message: str) -> None:
    """A reject ("rejects") or a decoder warning ("warnings") of one item, in the summary of every
    encoder that needed it."""
    item = plan.items[index]
    entry = {"image_id": item.record.image_id, "split": item.record.split, "processing": item.op.name,
             "path": item.record.path, "reason": message}
    for t in item.targets:
        getattr(summaries[plan.targets[t].spec.name], kind).append(entry)
