"""The local engine: the prepare stage in DataLoader workers (or a prefetch thread), the embed
stage on this machine's device; each batch's outcome goes back to the one place that commits."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
from bench import encoders
from bench.extraction.commit import BatchOutcome, Embedded, row
from bench.extraction.embed import Embedder
from bench.extraction.plan import Plan
from bench.extraction.prepare import DECODE_ERRORS, InputShape, Prepared, prepare
from bench.extraction.settings import ExtractionSettings
from bench.runtime import cpu_count, keep_freed_memory, pick_device


def defaults(device: torch.device, settings: ExtractionSettings) -> tuple[int, int]:
    """(batch size, workers). On a CPU the forward pass needs every core and small batches run
    fastest (measured on 2 cores: no workers 20 img/s, one worker 16 img/s); on an accelerator
    the CPU side sets the pace, so every core decodes."""
    if device.type == "cpu":
        return settings.batch_size or 8, settings.workers or 0
    return settings.batch_size or 256, cpu_count() if settings.workers is None else settings.workers


class _Items(torch.utils.data.Dataset):
    """Plan items -> (pixels per view, or None; item index; error); runs in worker processes."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan.items)

    def __getitem__(self, index: int) -> tuple[Prepared | None, int, str]:
        item = self.plan.items[index]
        try:
            return prepare(item.record, item.op, self.plan.input_shapes(item)), index, ""
        except DECODE_ERRORS as error:
            return None, index, f"{type(error).__name__}: {error}"


@dataclass
class Batch:
    grouped: dict[InputShape, tuple[list[int], torch.Tensor]]  # per view: item indices and their stacked pixels
    failed: list[tuple[int, str]]  # (item index, error)
    warned: list[tuple[int, str]]  # (item index, decoder warning)


def _collate(batch: list[tuple[Prepared | None, int, str]]) -> Batch:
    grouped: dict[InputShape, tuple[list[int], list[torch.Tensor]]] = {}
    failed, warned = [], []
    for prepared, index, error in batch:
        if prepared is None:
            failed.append((index, error))
            continue
        warned += [(index, message) for message in prepared.warnings]
        for view, tensor in prepared.pixels.items():
            indices, tensors = grouped.setdefault(view, ([], []))
            indices.append(index)
            tensors.append(tensor)
    return Batch({view: (indices, torch.stack(tensors)) for view, (indices, tensors) in grouped.items()}, failed, warned)


def _overlap(device: torch.device, workers: int) -> bool:
    """Whether a thread should prepare the next batches during the forward pass: only when the
    forward pass leaves a core free. On a CPU whose every core runs the model, a decoding thread
    only stalls the model's threads (measured on 2 cores, two encoders: 61 s with it, 52 s without)."""
    return workers == 0 and (device.type != "cpu" or torch.get_num_threads() < cpu_count())


def _prefetched(batches: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Yield from `batches` while a thread prepares the next ones: with no worker processes,
    decoding overlaps the forward pass (Pillow and torch release the GIL)."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    finished = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                ready.put(batch)
            ready.put(finished)
        except BaseException as error:  # handed to the consumer, raised there
            ready.put(error)

    thread = threading.Thread(target=produce, name="bench-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass


def prepared_batches(plan: Plan, settings: ExtractionSettings, device: torch.device) -> Iterable[Batch]:
    """The plan's items through the prepare stage, a batch at a time: in DataLoader worker
    processes, or in this process with a prefetch thread where the forward pass leaves a core free."""
    batch_size, workers = defaults(device, settings)
    loader = torch.utils.data.DataLoader(
        _Items(plan),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
        # LanceDB's runtime is not fork-safe; workers start clean instead.
        multiprocessing_context="forkserver" if workers > 0 else None,
    )
    return _prefetched(loader) if _overlap(device, workers) else loader


class LocalEngine:
    """This machine: the models load when the engine is made (a bad checkpoint fails before any
    table exists), then every batch is prepared and embedded by each encoder that needs it."""

    def __init__(self, plan: Plan, settings: ExtractionSettings):
        self.plan, self.settings = plan, settings
        self.device = pick_device(settings.device)
        keep_freed_memory()
        self.embedders = {t: Embedder(encoders.load(plan.targets[t].spec), self.device, settings.precision) for t in plan.working()}

    def batches(self, schemas: dict[int, Any]) -> Iterator[BatchOutcome]:
        """`schemas`: the tables' schemas, by target; rows go back to the driver, which commits them."""
        plan = self.plan
        for batch in prepared_batches(plan, self.settings, self.device):
            problems = [(index, "rejects", message) for index, message in batch.failed]
            problems += [(index, "warnings", message) for index, message in batch.warned]
            embedded: dict[int, Embedded] = {}
            for t, embedder in self.embedders.items():
                indices, pixels = batch.grouped.get(plan.targets[t].shape, ([], None))
                chosen = [position for position, index in enumerate(indices) if t in plan.items[index].targets]
                if not chosen:
                    continue
                began = time.perf_counter()
                vectors = embedder(pixels if len(chosen) == len(indices) else pixels[torch.tensor(chosen)])
                items = [plan.items[indices[position]] for position in chosen]
                embedded[t] = Embedded(len(chosen), [row(item.record, item.op) for item in items], vectors, forward_seconds=time.perf_counter() - began)
            finished = len(batch.failed) + len({i for indices, _ in batch.grouped.values() for i in indices})
            yield BatchOutcome(finished, problems, embedded)

    def close(self) -> None:
        pass
