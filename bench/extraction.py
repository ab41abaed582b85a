"""Extraction: dataset records -> processing op -> encoder -> rows in the store, resumable.

Decoding, processing and preprocessing run in DataLoader workers; only the forward pass runs on
the device. Rows are committed every few seconds, so an interruption loses at most the rows
since the last commit, and a rerun extracts only what is missing.
"""

from __future__ import annotations

import json
import platform
import queue
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, features
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench import encoders, processing
from bench.data import DatasetOptions, DatasetSpec, ImageRecord
from bench.encoders.preprocess import Preprocess, paper_preprocess
from bench.encoders.spec import EncoderSpec
from bench.store import Store, rows_to_arrow

FINGERPRINT_VERSION = 1
COMMIT_ROWS = 4096
# Bad input a worker turns into a reject instead of a crash.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class ExtractionSummary:
    dataset: str
    encoder: str
    images: int = 0  # items run through the encoder in this call
    rows_written: int = 0
    rows_skipped: int = 0  # already in the store
    rejects: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.dataset} x {self.encoder}: {self.images} images in {self.seconds:.1f} s "
            f"({self.images_per_second:.1f} img/s), {self.rows_written} rows written, "
            f"{self.rows_skipped} already stored, {len(self.rejects)} rejected"
        )


def package_versions() -> dict[str, str]:
    """Versions that change what an embedding is (decoder, resampling, model code)."""
    versions = {"python": platform.python_version(), "libjpeg": str(features.version("jpg"))}
    for package in ("torch", "torchvision", "timm", "open_clip_torch", "pillow", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def fingerprint(spec: EncoderSpec, preprocess: Preprocess, seed: int) -> dict[str, Any]:
    """Everything that must match for two vectors in one table to be comparable."""
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        "encoder": {key: value for key, value in spec.describe().items() if key != "source"},
        "weights": encoders.weights_identity(spec),
        "preprocess": preprocess.describe(),
        "processing_seed": seed,
        "dtype": "float32",
        "packages": package_versions(),
    }


def keep_freed_memory() -> bool:
    """Let glibc reuse freed activation buffers instead of unmapping them after every batch.

    By default a CPU forward pass mmaps each large activation and unmaps it on free, so every
    batch pays page faults on fresh zeroed pages; on 2 cores that halves EfficientNet-Lite0's
    throughput (19 vs 45 img/s at batch 8). Linux with glibc only; elsewhere nothing changes."""
    import ctypes
    import ctypes.util

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    trim_threshold, mmap_threshold = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD in <malloc.h>
    return bool(libc.mallopt(mmap_threshold, 512 << 20)) and bool(libc.mallopt(trim_threshold, 1 << 30))


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def item_tensor(record: ImageRecord, op: processing.Processing, preprocess: Preprocess, seed: int) -> torch.Tensor:
    """Decode, process and preprocess one (record, processing) item into the encoder's input."""
    image = record.load()
    if op.stage == "source":
        image = processing.apply(op, image, seed=seed, image_id=record.image_id)
    image = preprocess.geometry(image)
    if op.stage == "after_crop":
        image = processing.apply(op, image, seed=seed, image_id=record.image_id)
    return preprocess.tensorize(image)


class _Items(torch.utils.data.Dataset):
    """(record, processing) pairs -> (tensor or None, index, error); runs in worker processes."""

    def __init__(self, items: Sequence[tuple[ImageRecord, processing.Processing]], preprocess: Preprocess, seed: int):
        self.items = items
        self.preprocess = preprocess
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, str]:
        record, op = self.items[index]
        try:
            return item_tensor(record, op, self.preprocess, self.seed), index, ""
        except DECODE_ERRORS as error:
            return None, index, f"{type(error).__name__}: {error}"


def _collate(batch: list[tuple[torch.Tensor | None, int, str]]) -> tuple[torch.Tensor | None, list[int], list[tuple[int, str]]]:
    good = [(tensor, index) for tensor, index, _ in batch if tensor is not None]
    failed = [(index, error) for tensor, index, error in batch if tensor is None]
    stacked = torch.stack([tensor for tensor, _ in good]) if good else None
    return stacked, [index for _, index in good], failed


def embed(model: torch.nn.Module, batch: torch.Tensor, device: torch.device) -> np.ndarray:
    """Forward one batch; on CUDA out-of-memory, halve it and retry each half."""
    try:
        with torch.inference_mode():
            return model(batch.to(device, non_blocking=True)).float().cpu().numpy()
    except torch.cuda.OutOfMemoryError:
        if len(batch) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(batch) // 2
        return np.concatenate([embed(model, batch[:half], device), embed(model, batch[half:], device)])


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


def _row(record: ImageRecord, op: processing.Processing) -> dict[str, Any]:
    return {
        "image_id": record.image_id,
        "split": record.split,
        "processing": op.name,
        "group": processing.primary_group(op.name),
        "op_version": op.version,
        "label": record.label,
        "label_name": record.label_name,
        **record.metadata(),
    }


def extract(
    dataset: DatasetSpec,
    spec: EncoderSpec,
    processings: Sequence[str],
    store: Store,
    *,
    splits: Sequence[str] = ("train", "val"),
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    commit_seconds: float = 5.0,
    rebuild: bool = False,
    rejects_dir: Path | None = None,
    console: Console | None = None,
    dataset_options: DatasetOptions | None = None,
) -> ExtractionSummary:
    """Embed every (record, processing) not yet stored; return what was done."""
    console = console or Console(stderr=True)
    ops = [processing.get(name) for name in processings]
    listing = dataset.list(dataset_options)
    records = [record for record in listing.records if record.split in splits]
    key = dataset.store_key(dataset_options)
    preprocess = paper_preprocess(spec)
    if rebuild:
        store.drop(key, spec.name)
    expected = fingerprint(spec, preprocess, seed)
    if store.has_table(key, spec.name):
        store.prepare(key, spec.name, spec.embed_dim, expected)  # refuse a mismatch before any work
    existing = store.existing_keys(key, spec.name)
    # image-major: one image under all its processings in a row, so its file is decoded once
    todo = [(r, op) for r in records for op in ops if (r.image_id, r.split, op.name, op.version) not in existing]
    summary = ExtractionSummary(key, spec.name, rows_skipped=len(ops) * len(records) - len(todo))
    summary.rejects.extend({"image_id": "", "split": "", "processing": "", **reject} for reject in listing.rejects)
    if not todo:
        _finish(summary, rejects_dir, console, quiet=not summary.rejects)
        return summary

    started = time.perf_counter()
    keep_freed_memory()
    loaded = encoders.load(spec)  # a bad checkpoint fails here, before the table exists
    table_schema = store.prepare(key, spec.name, spec.embed_dim, expected)
    target = pick_device(device)
    model = loaded.model.to(target)
    batch_size, workers = _defaults(target, batch_size, workers)
    loader = torch.utils.data.DataLoader(
        _Items(todo, loaded.preprocess, seed),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=target.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
        # LanceDB's runtime is not fork-safe; workers start clean instead.
        multiprocessing_context="forkserver" if workers > 0 else None,
    )
    pending_rows: list[dict[str, Any]] = []
    pending_vectors: list[np.ndarray] = []
    last_commit = time.monotonic()
    commits = 0

    def commit() -> None:
        nonlocal last_commit, commits
        if pending_rows:
            store.write(key, spec.name, rows_to_arrow(pending_rows, np.concatenate(pending_vectors), table_schema))
            summary.rows_written += len(pending_rows)
            pending_rows.clear()
            pending_vectors.clear()
            commits += 1
        last_commit = time.monotonic()

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.1f} img/s"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"extract {key} x {spec.name}", total=len(todo), rate=0.0)
        for batch, indices, failed in _prefetched(loader):
            for index, error in failed:
                record, op = todo[index]
                summary.rejects.append({"image_id": record.image_id, "split": record.split, "processing": op.name, "path": record.path, "reason": error})
            if batch is not None:
                pending_vectors.append(embed(model, batch, target))
                pending_rows.extend(_row(*todo[index]) for index in indices)
                summary.images += len(indices)
            if len(pending_rows) >= COMMIT_ROWS or time.monotonic() - last_commit >= commit_seconds:
                commit()
            elapsed = time.perf_counter() - started
            progress.update(task, advance=len(indices) + len(failed), rate=summary.images / max(elapsed, 1e-9))
        commit()
    if commits > 1:
        store.compact(key, spec.name)
    summary.seconds = time.perf_counter() - started
    _finish(summary, rejects_dir, console)
    return summary


def _finish(summary: ExtractionSummary, rejects_dir: Path | None, console: Console, quiet: bool = False) -> None:
    if summary.rejects and rejects_dir is not None:
        path = _write_rejects(rejects_dir, summary.dataset, summary.encoder, summary.rejects)
        console.print(f"{len(summary.rejects)} rejected images listed in {path}")
    if not quiet:
        console.print(summary.line())


def _defaults(device: torch.device, batch_size: int | None, workers: int | None) -> tuple[int, int]:
    """On a CPU the forward pass needs every core and small batches run fastest (measured on
    2 cores: no workers 20 img/s, one worker 16 img/s); on an accelerator the CPU side sets
    the pace, so every core decodes."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        return batch_size or 8, 0 if workers is None else workers
    return batch_size or 256, cores if workers is None else workers


def _write_rejects(folder: Path, dataset: str, encoder: str, rejects: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset}__{encoder.replace('/', '--')}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:  # this run's rejects; a rerun lists them again
        for reject in rejects:
            handle.write(json.dumps(reject) + "\n")
    return path
