"""What a plan will cost before it runs: per encoder, what is stored and what is missing, the
disk the missing vectors take, whether its weights are on this machine, and the time, from rates
measured here on a few of the plan's own items (the prepare stage on one core; forward passes on
the device). A plan downloads nothing: forward passes run on the architecture with random weights
(as fast as the trained ones), and the network is closed while it measures."""

from __future__ import annotations

import contextlib
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Iterator

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.errors import BenchError
from bench.extraction.plan import Plan
from bench.extraction.settings import ExtractionSettings

ROW_BYTES = 256  # a row's metadata columns and key, beside its vector (measured on stored tables: 150-250 bytes)
SAMPLE_ITEMS = 16  # items timed through the prepare stage
TIMED_BATCHES = 2  # forward passes timed per encoder, after one warm-up
TIMING_SECONDS = 10.0  # encoders are timed cheapest first until this is spent; the rest are scaled from them by FLOPs
OFFLINE_VARIABLES = "HF_HUB_OFFLINE=1 or BENCH_OFFLINE=1"
BUILD_ERRORS = (OSError, RuntimeError, ValueError, ImportError, KeyError, BenchError)  # a model that cannot be built here


class NetworkClosed(ConnectionError):
    """A library tried to reach the network while a plan measured (plans download nothing)."""


@dataclass(frozen=True)
class Rates:
    """Throughput measured on this machine, or why it could not be."""

    prepare: float  # items/s through the prepare stage on one core
    forward: dict[int, float | str]  # target -> images/s on the device, or why it is unknown
    device: str
    workers: int  # processes preparing items in parallel (1: this one)
    scaled: frozenset[int] = frozenset()  # targets whose rate is a timed one scaled by FLOPs, not timed themselves
    weights: dict[int, bool] = field(default_factory=dict)  # target -> its weights are on this machine (no download needed)


@contextlib.contextmanager
def network_closed() -> Iterator[None]:
    """Every attempt to open an internet connection fails at once (no retries, no waiting)."""
    original = socket.socket.connect

    def refuse(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkClosed(f"a plan downloads nothing (asked for {address})")
        original(self, address)

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


_FLOPS: dict[tuple, float] = {}  # by what shapes the network: encoders of one architecture are counted once


def flops(spec) -> float:
    """Floating-point operations of one image's forward pass, counted on the architecture built
    without memory (torch's meta device): no weights, no download, no arithmetic."""
    shape = (spec.loader, spec.architecture, spec.input_size, spec.options, spec.pooling, spec.block)
    if shape not in _FLOPS:
        _FLOPS[shape] = _count_flops(spec)
    return _FLOPS[shape]


def _count_flops(spec) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench import encoders

    with torch.device("meta"):
        model = encoders.architecture(spec).eval().requires_grad_(False)
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, spec.input_size, spec.input_size))
    return float(counter.get_total_flops())


def _unbuilt(spec, error: Exception) -> str:
    """Why an encoder's architecture cannot be built for the plan, on one line with the fix."""
    reason = " ".join(str(error).split())[:160] or type(error).__name__
    if isinstance(error, NetworkClosed) or "offline" in reason.lower() or "connect" in reason.lower():
        return f"unknown: {spec.name}: building it needs the network, which a plan does not use ({reason}); set {OFFLINE_VARIABLES} to plan offline"
    return f"unknown: {spec.name}: {reason}"


def measure(plan: Plan, settings: ExtractionSettings, sample: int = SAMPLE_ITEMS, budget: float = TIMING_SECONDS) -> Rates:
    """Time the prepare stage on `sample` of the plan's items, spread over the plan, and the
    working encoders' forward passes on batches of them: random weights, cheapest first for
    `budget` seconds, the rest scaled from the timed ones by their FLOPs. Nothing is downloaded."""
    import torch

    from bench import encoders
    from bench.encoders.loaders import LoadedEncoder
    from bench.encoders.preprocess import paper_preprocess
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
            prepared.append(prepare(item.record, item.op, plan.input_shapes(item)).pixels)
        except DECODE_ERRORS:
            continue
    prepare_rate = len(chosen) / max(time.perf_counter() - started, 1e-9)
    forward: dict[int, float | str] = {}
    cost: dict[int, float] = {}
    achieved: list[float] = []  # FLOP/s of the timed encoders
    with network_closed():
        weights = {t: encoders.available_offline(plan.targets[t].spec) for t in plan.working()}
        for t in plan.working():
            try:
                cost[t] = flops(plan.targets[t].spec)
            except BUILD_ERRORS as error:
                forward[t] = _unbuilt(plan.targets[t].spec, error)
        spent = 0.0
        for t in sorted(cost, key=lambda t: (cost[t], t)):
            if achieved and spent >= budget:
                break
            target = plan.targets[t]
            pixels = [found[target.shape] for found in prepared if target.shape in found]
            if not pixels:
                forward[t] = "no sample item decoded"
                continue
            began = time.perf_counter()
            try:
                model = encoders.architecture(target.spec).eval().requires_grad_(False)
            except BUILD_ERRORS as error:
                forward[t] = _unbuilt(target.spec, error)
                continue
            embedder = Embedder(LoadedEncoder(target.spec, model, paper_preprocess(target.spec), "random init"), device, settings.precision)
            batch = torch.stack((pixels * -(-batch_size // len(pixels)))[:batch_size])
            embedder(batch)  # warm-up: allocation, kernels
            timed = time.perf_counter()
            for _ in range(TIMED_BATCHES):
                embedder(batch)
            rate = TIMED_BATCHES * len(batch) / max(time.perf_counter() - timed, 1e-9)
            forward[t] = rate
            achieved.append(rate * cost[t])
            del embedder, model
            spent += time.perf_counter() - began
    scaled = frozenset(t for t in cost if t not in forward and achieved)
    for t in scaled:
        forward[t] = statistics.median(achieved) / max(cost[t], 1.0)
    return Rates(prepare_rate, forward, str(device), max(workers, 1), scaled, weights)


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
    for header in ("encoder", "stored rows", "missing (forward passes)", "disk for the missing", *(("weights", "rate", "time") if rates else ())):
        grid.add_column(header, justify="left" if header == "encoder" else "right")
    forward_seconds = 0.0
    unknown = False
    for t, target in enumerate(plan.targets):
        missing = plan.missing(t)
        cells = [escape(target.spec.name), f"{plan.stored[target.spec.name]:,}", f"{missing:,}",
                 _size(missing * (4 * target.spec.embed_dim + ROW_BYTES))]
        if rates:
            found = rates.forward.get(t)
            cached = rates.weights.get(t)
            cells.append("" if cached is None else "on this machine" if cached else "[yellow]to download[/yellow]")
            if missing == 0:
                cells += ["", "nothing to do"]
            elif isinstance(found, float):
                forward_seconds += missing / found
                cells += [f"{'≈ ' if t in rates.scaled else ''}{found:,.1f} img/s", _duration(missing / found)]
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
        if rates.scaled:
            console.print(f"≈: not timed here; the timed encoders' speed in FLOP/s scaled by this encoder's FLOPs per image "
                          f"(encoders are timed cheapest first for {TIMING_SECONDS:g} s). Rates are of random weights, as fast as trained ones.")
