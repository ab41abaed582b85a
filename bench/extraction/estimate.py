"""What a plan will cost before it runs: per encoder, what is stored and what is missing, the
disk the missing vectors take, and the time, from rates measured here on a few of the plan's own
items (the prepare stage on one core; each encoder's forward pass on the device)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.errors import BenchError
from bench.extraction.plan import Plan
from bench.extraction.settings import ExtractionSettings

ROW_BYTES = 256  # a row's metadata columns and key, beside its vector (measured on stored tables: 150-250 bytes)
SAMPLE_ITEMS = 16  # items timed through the prepare stage
TIMED_BATCHES = 2  # forward passes timed per encoder, after one warm-up


@dataclass(frozen=True)
class Rates:
    """Throughput measured on this machine, or why it could not be."""

    prepare: float  # items/s through the prepare stage on one core
    forward: dict[int, float | str]  # target -> images/s on the device, or why it is unknown
    device: str
    workers: int  # processes preparing items in parallel (1: this one)


def measure(plan: Plan, settings: ExtractionSettings, sample: int = SAMPLE_ITEMS) -> Rates:
    """Time the prepare stage on `sample` of the plan's items, spread over the plan, and each
    working encoder's forward pass on batches of them."""
    import torch

    from bench import encoders
    from bench.extraction.embed import Embedder
    from bench.extraction.local import defaults
    from bench.extraction.prepare import DECODE_ERRORS, prepare
    from bench.runtime import pick_device

    device = pick_device(settings.device)
    batch_size, workers = defaults(device, settings)
    step = max(1, len(plan.items) // sample)
    chosen = plan.items[::step][:sample]
    started = time.perf_counter()
    prepared = []
    for item in chosen:
        try:
            prepared.append(prepare(item.record, item.op, plan.views(item)).pixels)
        except DECODE_ERRORS:
            continue
    prepare_rate = len(chosen) / max(time.perf_counter() - started, 1e-9)
    forward: dict[int, float | str] = {}
    for t in plan.working():
        target = plan.targets[t]
        pixels = [found[target.view] for found in prepared if target.view in found]
        if not pixels:
            forward[t] = "no sample item decoded"
            continue
        try:
            embedder = Embedder(encoders.load(target.spec), device, settings.precision)
        except BenchError as error:
            forward[t] = f"unknown: {error}".split(". ")[0]
            continue
        batch = torch.stack((pixels * -(-batch_size // len(pixels)))[:batch_size])
        embedder(batch)  # warm-up: allocation, kernels
        began = time.perf_counter()
        for _ in range(TIMED_BATCHES):
            embedder(batch)
        forward[t] = TIMED_BATCHES * len(batch) / max(time.perf_counter() - began, 1e-9)
        del embedder
    return Rates(prepare_rate, forward, str(device), max(workers, 1))


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def show(plan: Plan, console: Console, rates: Rates | None = None) -> None:
    """The plan as a table: per encoder what is stored, what is missing, the disk it will take
    and, with measured `rates`, how long it will take here."""
    grid = Table(title=f"plan · {plan.dataset}: {len(plan.items)} items to prepare (each decoded once for every encoder)",
                 title_justify="left")
    for header in ("encoder", "stored rows", "missing (forward passes)", "disk for the missing", *(("rate", "time") if rates else ())):
        grid.add_column(header, justify="left" if header == "encoder" else "right")
    forward_seconds = 0.0
    unknown = False
    for t, target in enumerate(plan.targets):
        missing = plan.missing(t)
        cells = [escape(target.spec.name), f"{plan.stored[target.spec.name]:,}", f"{missing:,}",
                 _size(missing * (4 * target.spec.embed_dim + ROW_BYTES))]
        if rates:
            found = rates.forward.get(t)
            if missing == 0:
                cells += ["", "nothing to do"]
            elif isinstance(found, float):
                forward_seconds += missing / found
                cells += [f"{found:,.1f} img/s", _duration(missing / found)]
            else:
                unknown = True
                cells += [escape(str(found)), "unknown"]
        grid.add_row(*cells)
    console.print(grid)
    if rates and plan.items:
        preparing = len(plan.items) / rates.prepare / rates.workers
        # on a CPU one process prepares and then embeds; on an accelerator the workers prepare while the device embeds
        total = preparing + forward_seconds if rates.device == "cpu" else max(preparing, forward_seconds)
        console.print(f"prepare stage: {rates.prepare:,.1f} items/s per process × {rates.workers} on this machine → "
                      f"{_duration(preparing)}; forward passes on {rates.device}: {_duration(forward_seconds)}. "
                      f"Estimated time: {'at least ' if unknown else ''}{_duration(total)}"
                      + (" (encoders whose rate is unknown are not counted)" if unknown else "") + ".")
