"""The loop every task shares: skip finished cells, extract what the other encoders lack in
one pass, compute each encoder's cell and write it with its provenance."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from bench import bootstrap, data, results
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
    from bench import extraction  # torch: only when there is work to do

    resolved = dataset or data.resolve(request.dataset, request.dataset_options)
    store = Store(request.workspace.embeddings_uri)
    key = resolved.key
    pending: list[tuple[EncoderSpec, results.Cell]] = []
    for spec in request.encoder_specs():
        cell = results.Cell(task, key, spec.name, condition)
        cached = None if request.overwrite else results.stored(cell, request.workspace.results)
        if cached is not None and cached.get("dataset_identity", {}).get("listing") != resolved.identity["listing"]:
            request.console.print(f"[yellow]stale:[/yellow] {cell.path(request.workspace.results)} was computed on another "
                                  "listing of this dataset; recomputing")
        elif cached is not None and resampling is not None and cached.get("provenance", {}).get("bootstrap") != resampling.provenance():
            request.console.print(f"[yellow]stale:[/yellow] {cell.path(request.workspace.results)} was computed with other "
                                  "bootstrap settings; recomputing")
        elif cached is not None:
            request.console.print(f"[dim]cached: {cell.path(request.workspace.results)}[/dim]")
            continue
        pending.append((spec, cell))
    if not pending:
        return []
    started = time.perf_counter()
    summaries = extraction.extract(
        resolved, [spec for spec, _ in pending], processings, store, splits=splits, settings=request.extraction,
        rebuild=request.rebuild, rejects_dir=request.workspace.rejects, console=request.console,
    )
    extract_seconds = time.perf_counter() - started
    if request.extraction.engine == "ray":  # every cell is an independent Ray task
        from bench.extraction import distributed

        outcomes = distributed.map_cells(_timed, [(compute, spec, store, key) for spec, _ in pending], request.extraction)
    else:
        outcomes = [_timed(compute, spec, store, key) for spec, _ in pending]
    written: list[Path] = []
    for (spec, cell), (computed, compute_seconds) in zip(pending, outcomes):
        summary = summaries[spec.name]
        payload = {
            "family": spec.family,
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
        written.append(results.write(cell, request.workspace.results, payload))
    return written


def _timed(compute: Compute, spec: EncoderSpec, store: Store, key: str) -> tuple[Computed, float]:
    started = time.perf_counter()
    return compute(spec, store, key), time.perf_counter() - started
