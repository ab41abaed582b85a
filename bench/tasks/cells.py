"""The loop every task shares: per encoder, skip a finished cell, extract what is missing,
compute, and write the cell with its provenance."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console

from bench import data, results
from bench.encoders.spec import EncoderSpec
from bench.store import Store, table_name
from bench.tasks.options import RunOptions


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
    options: RunOptions,
    console: Console,
    *,
    task: str,
    condition: str,
    processings: Sequence[str],
    splits: Sequence[str],
    compute: Compute,
) -> list[Path]:
    from bench import extraction  # torch: only when there is work to do

    dataset = data.get(options.dataset)
    store = Store(options.workspace.embeddings_uri)
    key = dataset.store_key(options.dataset_options())
    written: list[Path] = []
    for spec in options.encoder_specs():
        cell = results.Cell(task, key, spec.name, condition)
        if results.exists(cell, options.workspace.results) and not options.overwrite:
            console.print(f"[dim]cached: {cell.path(options.workspace.results)}[/dim]")
            continue
        started = time.perf_counter()
        summary = extraction.extract(
            dataset, spec, processings, store, splits=splits,
            device=options.device, batch_size=options.batch_size, workers=options.workers,
            rejects_dir=options.workspace.rejects, console=console, dataset_options=options.dataset_options(),
        )
        extracted = time.perf_counter()
        computed = compute(spec, store, key)
        payload = {
            "family": spec.family,
            "metric": computed.metric,
            "metrics": computed.metrics,
            "detail": computed.detail,
            "provenance": results.provenance(
                table=table_name(key, spec.name),
                table_version=store.version(key, spec.name),
                fingerprint=store.fingerprint(key, spec.name),
                **computed.provenance,
                timings={"extract_s": extracted - started, "compute_s": time.perf_counter() - extracted},
                extraction={"images": summary.images, "rejected": len(summary.rejects)},
            ),
        }
        written.append(results.write(cell, options.workspace.results, payload))
    return written
