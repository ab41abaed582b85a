"""The local engine: the prepare stage in DataLoader workers (or a prefetch thread), the embed
stage on this machine's device, the commit stage in this process."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
from rich.console import Console

from bench import encoders
from bench.extraction.commit import Committer, row
from bench.extraction.embed import Embedder
from bench.extraction.engine import ExtractionSummary, progress_bar, record_problem
from bench.extraction.plan import Plan
from bench.extraction.prepare import DECODE_ERRORS, Prepared, View, prepare
from bench.extraction.settings import ExtractionSettings
from bench.runtime import cpu_count, keep_freed_memory, pick_device
from bench.store import Store


def defaults(device: torch.device, settings: ExtractionSettings) -> tuple[int, int]:
    """(batch size, workers). On a CPU the forward pass needs every core and small batches run
    fastest (measured on 2 cores: no workers 20 img/s, one worker 16 img/s); on an accelerator
    the CPU side sets the pace, so every core decodes."""
    if device.type == "cpu":
        return settings.batch_size or 8, settings.workers or 0
    return settings.batch_size or 256, cpu_count() if settings.workers is None else settings.workers


class _Items(torch.utils.data.Dataset):
    """Plan items -> (pixels per view, or None; item index; error); runs in worker processes."""

    def __init__(self, plan: Plan, seed: int):
        self.plan = plan
        self.seed = seed

    def __len__(self) -> int:
        return len(self.plan.items)

    def __getitem__(self, index: int) -> tuple[Prepared | None, int, str]:
        item = self.plan.items[index]
        try:
            return prepare(item.record, item.op, self.plan.views(item), self.seed), index, ""
        except DECODE_ERRORS as error:
            return None, index, f"{type(error).__name__}: {error}"


@dataclass
class Batch:
    grouped: dict[View, tuple[list[int], torch.Tensor]]  # per view: item indices and their stacked pixels
    failed: list[tuple[int, str]]  # (item index, error)
    warned: list[tuple[int, str]]  # (item index, decoder warning)


def _collate(batch: list[tuple[Prepared | None, int, str]]) -> Batch:
    grouped: dict[View, tuple[list[int], list[torch.Tensor]]] = {}
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


def run(plan: Plan, settings: ExtractionSettings, store: Store, summaries: dict[str, ExtractionSummary], console: Console) -> None:
    """Embed every planned item with every encoder that lacks it."""
    device = pick_device(settings.device)
    keep_freed_memory()
    working = [t for t in range(len(plan.targets)) if plan.missing(t)]
    embedders = {t: Embedder(encoders.load(plan.targets[t].spec), device, settings.precision) for t in working}
    # tables are created only once every model has loaded: a bad checkpoint leaves nothing behind
    committers = {
        t: Committer(store, plan.dataset, plan.targets[t].spec.name,
                     store.prepare(plan.dataset, plan.targets[t].spec.name, plan.targets[t].spec.embed_dim, plan.targets[t].fingerprint),
                     settings.commit_seconds, since=plan.since[plan.targets[t].spec.name])
        for t in working
    }
    batch_size, workers = defaults(device, settings)
    loader = torch.utils.data.DataLoader(
        _Items(plan, settings.seed),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
        # LanceDB's runtime is not fork-safe; workers start clean instead.
        multiprocessing_context="forkserver" if workers > 0 else None,
    )
    names = ", ".join(plan.targets[t].spec.name for t in working)
    started = time.perf_counter()
    done = 0
    with progress_bar(console) as progress:
        bar = progress.add_task(f"extract {plan.dataset} x {names}", total=len(plan.items), rate=0.0)
        for batch in _prefetched(loader) if _overlap(device, workers) else loader:
            grouped, failed = batch.grouped, batch.failed
            for kind, found in (("rejects", failed), ("warnings", batch.warned)):
                for index, message in found:
                    record_problem(summaries, plan, plan.items[index], kind, message)
            for t, embedder in embedders.items():
                indices, pixels = grouped.get(plan.targets[t].view, ([], None))
                chosen = [position for position, index in enumerate(indices) if t in plan.items[index].targets]
                if not chosen:
                    continue
                began = time.perf_counter()
                vectors = embedder(pixels if len(chosen) == len(indices) else pixels[torch.tensor(chosen)])
                summaries[plan.targets[t].spec.name].forward_seconds += time.perf_counter() - began
                items = [plan.items[indices[position]] for position in chosen]
                committers[t].add([row(item.record, item.op) for item in items], vectors)
                summaries[plan.targets[t].spec.name].images += len(chosen)
            done += len(failed) + len({i for indices, _ in grouped.values() for i in indices})
            progress.update(bar, completed=done, rate=done / max(time.perf_counter() - started, 1e-9))
        for t, committer in committers.items():
            committer.close()
            summaries[plan.targets[t].spec.name].rows_written += committer.written
