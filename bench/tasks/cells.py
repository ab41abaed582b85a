"""The loop every task shares: skip finished cells, extract what the other encoders lack in
one pass, compute each encoder's cell and write it with its provenance."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.markup import escape

from bench import bootstrap, data, identity, processing, results
from bench.encoders.spec import EncoderSpec
from bench.store import Store, table_name
from bench.tasks.request import RunRequest


@dataclass(frozen=True)
class Computed:
    """What a task computed for one encoder: its headline metric, the metrics, the detail."""

    metric: str
    metrics: dict[str, Any]
    detail: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)  # task-specific entries


# compute(spec, store, table key) -> Computed
Compute = Callable[[EncoderSpec, Store, str], Computed]


def run_cells(
    request: RunRequest,
    *,
    task: str,
    condition: str,
    processings: Sequence[str],
    splits: Sequence[str],
    compute: Compute,
    dataset: "data.ResolvedDataset | None" = None,
    resampling: bootstrap.Resampling | None = None,
) -> list[Path]:
    """Cells of `task` under `condition` for every encoder of the request; returns the paths written.
    The bootstrap settings of a task with intervals go into each cell's provenance, not its
    condition (they change no number): a stored cell made with other settings is recomputed."""
    from bench import extraction  # torch: only when a task runs, not when the CLI starts
    from bench.extraction.fingerprint import fingerprint

    resolved = dataset or data.resolve(request.dataset, request.dataset_options)
    store = Store(request.workspace.embeddings_uri)
    key = resolved.key
    versions = {name: processing.get(name).version for name in processings}
    pending: list[tuple[EncoderSpec, results.Cell, identity.CellInputs]] = []
    for spec in request.encoder_specs():
        cell = results.Cell(task, key, spec.name, condition)
        wanted = identity.CellInputs(
            {**resolved.identity, "contents": resolved.contents},
            fingerprint(spec, request.extraction.precision, resolved.identity),
            versions, None if request.rebuild else store.table_id(key, spec.name),  # a rebuilt table is dropped unread
        )
        cached = None if request.overwrite else results.stored(cell, request.workspace.results)
        if cached is not None:
            reasons = identity.changes(cached.get("inputs"), wanted)
            if resampling is not None and cached.get("provenance", {}).get("bootstrap") != resampling.provenance():
                reasons.append("other bootstrap settings")
            if not reasons:
                request.console.print(f"[dim]cached: {cell.path(request.workspace.results)}[/dim]")
                continue
            request.console.print(f"[yellow]stale:[/yellow] {escape(str(cell.path(request.workspace.results)))}: "
                                  f"{escape('; '.join(reasons))}; recomputing (the old cell is kept under "
                                  f"{escape(str(request.workspace.superseded))})")
        pending.append((spec, cell, wanted))
    if not pending:
        return []
    if request.plan_only:
        request.console.print(f"{len(pending)} cell(s) to compute; what their extraction needs:")
        extraction.extract(resolved, [spec for spec, _, _ in pending], processings, store, splits=splits, settings=request.extraction,
                           rebuild=request.rebuild, console=request.console, plan_only=True)
        return []
    started = time.perf_counter()
    ray = request.extraction.engine == "ray"
    if ray:
        from bench.extraction import distributed
    with distributed.session(request.extraction) if ray else contextlib.nullcontext():  # Ray starts once per command
        summaries = extraction.extract(
            resolved, [spec for spec, _, _ in pending], processings, store, splits=splits, settings=request.extraction,
            rebuild=request.rebuild, rejects_dir=request.workspace.rejects, console=request.console,
        )
        extract_seconds = time.perf_counter() - started
        read = {spec.name: dataclasses.replace(wanted, table=store.table_id(key, spec.name)) for spec, _, wanted in pending}
        if ray:  # every cell is an independent Ray task
            outcomes = distributed.map_cells(_timed, [(compute, spec, store, key) for spec, _, _ in pending], request.extraction)
        else:
            outcomes = [_timed(compute, spec, store, key) for spec, _, _ in pending]
    written: list[Path] = []
    for (spec, cell, _), (computed, compute_seconds) in zip(pending, outcomes):
        summary = summaries[spec.name]
        payload = {
            "family": spec.family,
            "inputs": read[spec.name].as_json(),
            "dataset_identity": resolved.identity,
            "metric": computed.metric,
            "metrics": computed.metrics,
            "detail": computed.detail,
            "provenance": results.provenance(
                table=table_name(key, spec.name),
                table_version=store.version(key, spec.name),
                fingerprint=store.fingerprint(key, spec.name),
                **computed.provenance,
                **({"bootstrap": resampling.provenance()} if resampling is not None else {}),
                timings={"extract_s": extract_seconds, "compute_s": compute_seconds, "extract_encoders": len(pending),
                         "engine": request.extraction.engine},
                extraction={"images": summary.images, "rejected": len(summary.rejects)},
            ),
        }
        results.supersede(cell, request.workspace.results, request.workspace.superseded, payload["inputs"])
        written.append(results.write(cell, request.workspace.results, payload))
    return written


def _timed(compute: Compute, spec: EncoderSpec, store: Store, key: str) -> tuple[Computed, float]:
    started = time.perf_counter()
    return compute(spec, store, key), time.perf_counter() - started
