"""The loop every task shares: plan the task's work, keep each cell's identity (serve an unchanged
cell, say why another is recomputed), extract what the encoders lack in one pass on the chosen
engine (Ray started once per command), read the vectors, let the task measure, and write one
typed cell per encoder with its intervals and provenance."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from rich.console import Console
from rich.markup import escape

from bench import bootstrap, data, encoders, extraction, identity, processing, results, table_state
from bench.encoders.catalog import DEFAULT_ENCODERS
from bench.encoders.custom import with_weights
from bench.encoders.spec import EncoderSpec
from bench.extraction.fingerprint import fingerprint
from bench.extraction.settings import ExtractionSettings
from bench.progress import Reporter
from bench.report import render
from bench.table_state import table_name
from bench.tasks.options import inference
from bench.tables import Grid
from bench.tasks.spec import SILENT, Inputs, Outcome, TaskSpec, Work
from bench.workspace import Workspace

if TYPE_CHECKING:
    from bench.store import Store  # LanceDB and pyarrow load only when a cell is computed


@dataclass(frozen=True)
class RunRequest:
    """What `run` asks: the dataset, the encoders, how to extract, and the task's own options."""

    workspace: Workspace
    dataset: str = "patches"
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    dataset_options: data.DatasetOptions = data.DatasetOptions()
    extraction: ExtractionSettings = ExtractionSettings()
    overwrite: bool = False
    rebuild: bool = False  # drop the encoders' tables for the dataset and extract again
    weights: str | None = None  # a local checkpoint replacing the (single) encoder's weights
    values: Mapping[str, Any] = field(default_factory=dict)  # the task's own options, by name
    console: Console = field(default_factory=lambda: Console(stderr=True))
    plan_only: bool = False  # say what the run would extract and how long it would take, then stop

    def encoder_specs(self) -> list[EncoderSpec]:
        """The specs to run, with --weights applied."""
        specs = [encoders.get(name) for name in self.encoders]
        return [with_weights(spec, self.weights) for spec in specs] if self.weights else specs


def options_of(task: TaskSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every option the task takes, by name: the value given, else its default."""
    return {option.name: values.get(option.name, option.default) for option in task.options}


@dataclass(frozen=True)
class Measured:
    """One encoder's outcome and the seconds it took."""

    outcome: Outcome
    seconds: float


def measure(task: TaskSpec, spec: EncoderSpec, store: Store, dataset: data.ResolvedDataset, work: Work, device: str,
            console: Console | None) -> Measured:
    # `console` None (a Ray worker): nobody watches, the task reports to a silent channel
    """Read the encoder's vectors of the work's splits and processings, and let the task measure
    them (in this process, or in a Ray task: everything here is picklable)."""
    started = time.perf_counter()
    vectors = {split: store.split_vectors(dataset.key, spec.name, split, work.processings) for split in work.splits}
    outcome = task.measure(Inputs(spec, dataset, vectors, work.settings, device, Reporter(console) if console is not None else SILENT))
    return Measured(outcome, time.perf_counter() - started)


def assemble(key: results.CellKey, family: str, outcome: Outcome, resampling: bootstrap.Resampling | None,
             task: TaskSpec) -> tuple[results.Cell, float]:
    """The cell of one outcome: its metrics, their intervals (and the trace measure's resamples)
    from `resampling`, its detail, picks and own provenance; with the seconds the bootstrap took."""
    began = time.perf_counter()
    resampled = outcome.resample(resampling) if resampling is not None else None
    seconds = time.perf_counter() - began
    cell = results.Cell(
        key, family, outcome.metrics(), task_version=task.version,
        intervals=resampled.intervals() if resampled is not None else {},
        resamples=resampled.kept(task.trace.path) if resampled is not None and task.trace is not None else {},
        tests=dict(resampled.tests) if resampled is not None else {},
        detail=outcome.detail(), picks=outcome.picks(),
        provenance={**outcome.provenance(), **({"bootstrap": resampling.provenance()} if resampling is not None else {})},
    )
    return cell, seconds


@dataclass(frozen=True)
class Ran:
    """What a run was about: its board (the dataset's key and the condition) and the cells it wrote."""

    dataset: str
    condition: str
    written: tuple[Path, ...] = ()


def run(request: RunRequest, task: TaskSpec) -> Ran:
    """The task's cells for every encoder of the request; returns its board and the paths written."""
    dataset = data.resolve(request.dataset, request.dataset_options)
    options = options_of(task, request.values)
    work = task.work(options, dataset)  # a dataset the task cannot use is refused here, before any extraction
    nothing_written = Ran(dataset.key, work.condition.text)
    for note in work.notes:
        request.console.print(render.terminal(note) if isinstance(note, Grid) else note)
    resampling = inference(options, dataset) if work.unit else None
    pending = _stale(request, task, dataset, work, None, resampling)
    if not pending:
        return nothing_written
    from bench.store import Store

    store = Store(request.workspace.embeddings_uri)
    specs = [spec for spec, _, _ in pending]
    if request.plan_only:
        request.console.print(f"{len(pending)} cell(s) to compute; what their extraction needs:")
        extraction.extract(dataset, specs, work.processings, store, splits=work.splits, settings=request.extraction,
                           rebuild=request.rebuild, console=request.console, plan_only=True)
        return nothing_written
    started = time.perf_counter()
    ray = request.extraction.engine == "ray"
    if ray:
        from bench.extraction import distributed  # Ray loads only for --engine ray
    with distributed.session(request.extraction) if ray else contextlib.nullcontext():  # Ray starts once per command
        summaries = extraction.extract(dataset, specs, work.processings, store, splits=work.splits, settings=request.extraction,
                                       rebuild=request.rebuild, rejects_dir=request.workspace.rejects, console=request.console)
        extract_seconds = time.perf_counter() - started
        read = {spec.name: dataclasses.replace(wanted, table=store.table_id(dataset.key, spec.name)) for spec, _, wanted in pending}
        device = request.extraction.device
        if ray:  # every cell is an independent Ray task
            measured = distributed.map_cells(measure, [(task, spec, store, dataset, work, device, None) for spec in specs], request.extraction)
        else:
            measured = [measure(task, spec, store, dataset, work, device, request.console) for spec in specs]
    written: list[Path] = []
    for (spec, key, _), found in zip(pending, measured):
        summary = summaries[spec.name]
        cell, bootstrap_seconds = assemble(key, spec.family, found.outcome, resampling, task)
        cell = dataclasses.replace(
            cell, inputs=read[spec.name].as_json(), dataset_identity=dataset.identity, settings=work.condition.as_dict(),
            provenance=results.provenance(
                table=table_name(dataset.key, spec.name), table_version=store.version(dataset.key, spec.name),
                fingerprint=store.fingerprint(dataset.key, spec.name), **cell.provenance,
                timings={"extract_s": extract_seconds, "compute_s": found.seconds, "bootstrap_s": bootstrap_seconds,
                         "extract_encoders": len(pending), "engine": request.extraction.engine},
                extraction={"images": summary.images, "rejected": len(summary.rejects)},
            ),
        )
        results.supersede(key, request.workspace.results, request.workspace.superseded, cell.inputs)
        written.append(results.write(cell, request.workspace.results))
    return dataclasses.replace(nothing_written, written=tuple(written))


def _finite(cell: results.Cell, task: TaskSpec) -> bool:
    """Whether the metric the task's board is ordered by is a finite number (else the cell is damaged)."""
    value = cell.metrics.get(task.primary)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _table_id(uri: str, dataset: str, encoder: str, store: Store | None = None, recorded: bool = True) -> str | None:
    """The id of the table a cell reads: from the table's state record while that is current
    (`recorded`), without opening LanceDB; else from the store, which records it anew."""
    known = table_state.recall(uri, table_name(dataset, encoder)) if recorded else None
    if known is not None:
        return known.table_id
    if store is None:
        from bench.store import Store

        store = Store(uri)
    return store.table_id(dataset, encoder)


def _stale(request: RunRequest, task: TaskSpec, dataset: data.ResolvedDataset, work: Work, store: Store | None,
           resampling: bootstrap.Resampling | None) -> list[tuple[EncoderSpec, results.CellKey, identity.CellInputs]]:
    """The encoders whose cell must be computed, each with its key and the inputs it will have;
    an unchanged stored cell is served (`cached:`), another is recomputed with the reason.
    `store`: the store if it is open already (None: opened only where a table's record is not current)."""
    uri = store.uri if store is not None else request.workspace.embeddings_uri
    versions = {name: processing.get(name).version for name in work.processings}
    pending = []
    for spec in request.encoder_specs():
        key = results.CellKey(task.name, dataset.key, spec.name, work.condition.text)
        cached, unreadable = (None, None) if request.overwrite else results.stored(key, request.workspace.results)
        if cached is not None and not _finite(cached, task):
            cached, unreadable = None, f"damaged: its {task.primary} is not a finite number"
        table = None if request.rebuild else _table_id(  # a rebuilt table is dropped unread; the record serves cells that may be reused
            uri, dataset.key, spec.name, store, recorded=cached is not None)
        wanted = identity.CellInputs(
            {**dataset.identity, "contents": dataset.contents, "units": dataset.units_digest}, fingerprint(spec, request.extraction.precision, dataset.identity),
            versions, table,
        )
        if unreadable is not None:
            request.console.print(f"[yellow]stale:[/yellow] {escape(str(key.path(request.workspace.results)))}: {escape(unreadable)}; "
                                  f"recomputing (the old file moves to {escape(str(request.workspace.superseded))})")
        if cached is not None:
            reasons = identity.changes(dict(cached.inputs) or None, wanted)
            if resampling is not None and cached.provenance.get("bootstrap") != resampling.provenance():
                reasons.append("other bootstrap settings")
            if cached.task_version != task.version:
                reasons.append(f"measured by version {cached.task_version} of {task.name}, this bench measures version {task.version}")
            path = key.path(request.workspace.results)
            if not reasons:
                request.console.print(f"[dim]cached: {escape(str(path))}[/dim]")
                continue
            request.console.print(f"[yellow]stale:[/yellow] {escape(str(path))}: {escape('; '.join(reasons))}; recomputing "
                                  f"(the old cell moves to {escape(str(request.workspace.superseded))})")
        pending.append((spec, key, wanted))
    return pending
