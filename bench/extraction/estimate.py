"""What a plan will cost before it runs: per encoder, what is stored and what is missing, the
disk the missing vectors take, whether its weights are on this machine (and about how large they
are when not), and the time, from rates measured here on a few of the plan's own items (the
prepare stage on one core; forward passes on the device the plan states). A plan downloads
nothing: forward passes run on the architecture with random weights (as fast as the trained
ones), one encoder per network, and the network is closed while it measures. FLOPs and
parameters come from bench.extraction.costs (counted once per network and library version)."""

from __future__ import annotations

import contextlib
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Iterator

from rich.console import Console

from bench.errors import BenchError
from bench.extraction.costs import Cost, CostBook, shape_key
from bench.extraction.plan import Plan
from bench.extraction.settings import ExtractionSettings
from bench.report import render
from bench.tables import grid

ROW_BYTES = 256  # a row's metadata columns and key, beside its vector (measured on stored tables: 150-250 bytes)
SAMPLE_ITEMS = 16  # items timed through the prepare stage
TIMED_BATCHES = 2  # forward passes timed per encoder, after one warm-up
TIMING_SECONDS = 10.0  # networks are timed cheapest first until this is spent; the rest are scaled from them by FLOPs
OFFLINE_VARIABLES = "HF_HUB_OFFLINE=1 or BENCH_OFFLINE=1"
BUILD_ERRORS = (OSError, RuntimeError, ValueError, ImportError, KeyError, BenchError)  # a model that cannot be built here


class NetworkClosed(ConnectionError):
    """A library tried to reach the network while a plan measured (plans download nothing)."""


@dataclass(frozen=True)
class Rates:
    """Throughput measured on this machine, or why it could not be."""

    prepare: float  # items/s through the prepare stage on one core
    forward: dict[int, float | str]  # target -> images/s on the device, or why it is unknown
    device: str  # the device the forward passes were timed on (the plan's assumption, stated with the estimate)
    workers: int  # processes preparing items in parallel (1: this one)
    scaled: frozenset[int] = frozenset()  # targets whose rate is a timed one scaled by FLOPs, not timed themselves
    weights: dict[int, bool] = field(default_factory=dict)  # target -> its weights are on this machine (no download needed)
    params: dict[int, int] = field(default_factory=dict)  # target -> parameters of its network
    batch_size: int = 0  # images per timed forward pass
    counted: frozenset[int] = frozenset()  # targets whose FLOPs were counted by this plan (not shipped or kept)


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


def _unbuilt(spec, error: Exception) -> str:
    """Why an encoder's architecture cannot be built for the plan, on one line with the fix."""
    reason = " ".join(str(error).split())[:160] or type(error).__name__
    if isinstance(error, NetworkClosed) or "offline" in reason.lower() or "connect" in reason.lower():
        return f"unknown: {spec.name}: building it needs the network, which a plan does not use ({reason}); set {OFFLINE_VARIABLES} to plan offline"
    return f"unknown: {spec.name}: {reason}"


def assumed_device(settings: ExtractionSettings) -> str:
    """The device the plan times forward passes on, decided from the options alone where it can
    be: a named --device; with auto, this machine's best device for the local engine (which runs
    here), and the CPU for Ray, whose workers' devices a plan cannot see."""
    if settings.device != "auto":
        return settings.device
    if settings.engine == "ray":
        return "cpu"
    from bench.runtime import pick_device

    return str(pick_device("auto"))


def measure(plan: Plan, settings: ExtractionSettings, sample: int = SAMPLE_ITEMS, budget: float = TIMING_SECONDS,
            book: CostBook | None = None) -> Rates:
    """Time the prepare stage on `sample` of the plan's items, spread over the plan, and the
    working encoders' forward passes on batches of them: random weights, one encoder per network,
    cheapest first for `budget` seconds, the rest scaled from the timed ones by their FLOPs.
    Nothing is downloaded."""
    import torch

    from bench import encoders
    from bench.encoders.loaders import LoadedEncoder
    from bench.encoders.preprocess import paper_preprocess
    from bench.extraction.embed import Embedder
    from bench.extraction.local import defaults
    from bench.extraction.prepare import DECODE_ERRORS, prepare

    book = book or CostBook()
    device = torch.device(assumed_device(settings))
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
    costs: dict[int, Cost] = {}
    networks: dict[str, list[int]] = {}  # shape key -> the targets of that network
    achieved: list[float] = []  # FLOP/s of the timed networks
    with network_closed():
        weights = {t: encoders.available_offline(plan.targets[t].spec) for t in plan.working()}
        for t in plan.working():
            try:
                costs[t] = book.cost(plan.targets[t].spec)
            except BUILD_ERRORS as error:
                forward[t] = _unbuilt(plan.targets[t].spec, error)
                continue
            networks.setdefault(shape_key(plan.targets[t].spec), []).append(t)
        spent = 0.0
        for key, members in sorted(networks.items(), key=lambda entry: (costs[entry[1][0]].flops, entry[1][0])):
            if achieved and spent >= budget:
                break
            target = plan.targets[members[0]]
            pixels = [found[target.shape] for found in prepared if target.shape in found]
            if not pixels:
                forward.update({t: "no sample item decoded" for t in members})
                continue
            began = time.perf_counter()
            try:
                model = encoders.architecture(target.spec).eval().requires_grad_(False)
            except BUILD_ERRORS as error:
                forward.update({t: _unbuilt(plan.targets[t].spec, error) for t in members})
                continue
            embedder = Embedder(LoadedEncoder(target.spec, model, paper_preprocess(target.spec), "random init"), device, settings.precision)
            batch = torch.stack((pixels * -(-batch_size // len(pixels)))[:batch_size])
            embedder(batch)  # warm-up: allocation, kernels
            timed = time.perf_counter()
            for _ in range(TIMED_BATCHES):
                embedder(batch)
            rate = TIMED_BATCHES * len(batch) / max(time.perf_counter() - timed, 1e-9)
            forward.update({t: rate for t in members})
            achieved.append(rate * costs[members[0]].flops)
            del embedder, model
            spent += time.perf_counter() - began
    scaled = frozenset(t for t in costs if t not in forward and achieved)
    for t in scaled:
        forward[t] = statistics.median(achieved) / max(costs[t].flops, 1.0)
    counted = frozenset(t for t, cost in costs.items() if cost.source == "counted")
    return Rates(prepare_rate, forward, str(device), max(workers, 1), scaled, weights,
                 {t: cost.params for t, cost in costs.items()}, batch_size, counted)


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
    header = ("encoder", "stored rows", "missing rows", "disk for the missing", *(("weights", "rate", "time") if rates else ()))
    rows: list[list[str]] = []
    forward_seconds = 0.0
    unknown = False
    for t, target in enumerate(plan.targets):
        missing = plan.missing(t)
        cells = [target.spec.name, f"{plan.stored[target.spec.name]:,}", f"{missing:,}", _size(missing * (4 * target.spec.embed_dim + ROW_BYTES))]
        if rates:
            found = rates.forward.get(t)
            cached = rates.weights.get(t)
            params = rates.params.get(t)
            size = f" (≈ {_size(4 * params)})" if params else ""  # float32 weights; a checkpoint in half precision is half that
            cells.append("" if cached is None else "on this machine" if cached else f"to download{size}")
            if missing == 0:
                cells += ["", "nothing to do"]
            elif isinstance(found, float):
                forward_seconds += missing / found
                cells += [f"{'≈ ' if t in rates.scaled else ''}{found:,.1f} img/s", _duration(missing / found)]
            else:
                unknown = True
                cells += [str(found), "unknown"]
        rows.append(cells)
    # rows are told apart by the encoder's name: it is never wrapped or cut
    console.print(render.terminal(grid(f"plan · {plan.dataset}: {len(plan.items)} items to prepare (each decoded once for every encoder)",
                                       header, rows, keep_whole=(0,))))
    if rates and plan.items:
        preparing = len(plan.items) / rates.prepare / rates.workers
        # on a CPU one process prepares and then embeds; on an accelerator the workers prepare while the device embeds
        total = preparing + forward_seconds if rates.device == "cpu" else max(preparing, forward_seconds)
        console.print(f"prepare stage: {rates.prepare:,.1f} items/s per process × {rates.workers} on this machine → "
                      f"{_duration(preparing)}; forward passes on {rates.device} (assumed; batches of {rates.batch_size}): "
                      f"{_duration(forward_seconds)}. Estimated time here: {'at least ' if unknown else ''}{_duration(total)}"
                      + (" (encoders whose rate is unknown are not counted)" if unknown else "") + ".")
        console.print(f"Rates are of random weights (as fast as trained ones) on this machine's {rates.device}; another device "
                      "(--device, or the workers of --engine ray) runs at its own speed. Download sizes: ≈ parameters × 4 bytes.")
        if rates.scaled:
            console.print(f"≈: not timed here; the timed networks' speed in FLOP/s scaled by this encoder's FLOPs per image "
                          f"(networks are timed cheapest first for {TIMING_SECONDS:g} s; encoders of one network share its timing).")
