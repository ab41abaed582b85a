#!/usr/bin/env python
"""Extraction throughput: bench's pipeline against the work it cannot avoid.

Run from the project root:

    python benchmarks/extract.py                       # demo train+val x the JPEG group, effnet/lite0.in1k, CPU, batch 8
    python benchmarks/extract.py --encoders effnet/lite0.in1k,effnet/lite0.random
    python benchmarks/extract.py --device cuda --encoders random:vit_base_patch16_224 --batch-size 256   # a CUDA machine

Measurements, each in a fresh Python process, alternating for --rounds rounds (best of each):
  bare     per encoder, only model(batch) over pre-built input tensors, after one warm-up batch
  prepare  extraction's own prepare stage (decode, processing op, resize + crop per distinct
           view) over every item, in one thread, with nothing else running
  pipeline the whole bench.extraction.extract() call into a fresh store, all encoders in one pass,
           nothing subtracted; bench also reports the time its forward passes took
  single   (with several encoders) the same pipeline with the first encoder alone
  ray      (--engine ray) the same pipeline on the Ray engine, starting a local cluster

Ratios printed, with their goals:
  CPU      pipeline time / (bare forward of every encoder + prepare)   goal <= 1.1: the pipeline
           adds little beyond the forward passes and the decoding it must do
  encoders (several encoders) CPU-side time per item, i.e. pipeline time minus its forward passes,
           with all encoders / with the first alone                     goal <= 1.25: one decode
           feeds every encoder
  GPU      (--device cuda) pipeline rate / the lesser of the bare forward rate and the decode rate
           of all cores (prepare rate x cores)                           goal >= 0.8
  Ray      (--engine ray) the Ray engine's rate / the local engine's    goal >= 0.7
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench.arguments import comma_list, positive_int  # noqa: E402  (torch-free)

EPILOG = """what each figure includes:
  pipeline  wall time of the bench.extraction.extract() call, nothing subtracted: fingerprint (weights
            checksum), LanceDB table creation, encoder loads, decode + processing + preprocessing, every
            forward pass including the cold first one, store writes and compaction.
  bare      only model(batch) under torch.inference_mode over pre-built tensors, after one warm-up batch
            (decoding, preprocessing and the model load happen before, untimed).
  prepare   extraction's prepare stage alone for every item, one thread.

devices:
  --device cpu (default) runs anywhere. A GPU figure needs a machine with CUDA (and a CUDA build of
  torch): e.g. --device cuda --encoder random:vit_base_patch16_224 --batch-size 256. Random-init
  encoders need no weights download, so that works offline. On CUDA the bare loop synchronises
  before and after the timed region; its input batches are moved to the GPU before timing.

examples:
  python benchmarks/extract.py
  python benchmarks/extract.py --dataset demo-mini --limit 32
  python benchmarks/extract.py --processings jpeg75_420,jpeg95_444 --splits val
  python benchmarks/extract.py --device cuda --encoder random:vit_base_patch16_224 --batch-size 256
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/extract.py",
        description=(
            "Compare bench's extraction pipeline (decode + processing + preprocessing + forward + store writes) "
            "with a bare forward loop over the same pre-decoded images, and report the ratio."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    parser.add_argument("--root", help="the dataset's folder, for datasets that live on disk")
    parser.add_argument(
        "--encoders", "--encoder", dest="encoders", type=comma_list, default=("effnet/lite0.in1k",),
        help="comma-separated registered encoder names (default: effnet/lite0.in1k), or random:<timm architecture> "
        "for a seeded random-init timm model, e.g. random:vit_base_patch16_224 (ViT-B/16)",
    )
    parser.add_argument("--processings", "--processing", type=comma_list, help="comma-separated processing names (default: the six classes of the JPEG group)")
    parser.add_argument("--splits", type=comma_list, default=("val", "train"), help="comma-separated splits (default: val,train)")
    parser.add_argument("--limit", type=positive_int, help="use only the first N images of the chosen splits, in the dataset's order (default: all)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass, for both measurements (default: 8)")
    parser.add_argument("--device", default="cpu", help="torch device for both measurements: cpu (default), cuda, cuda:1, mps")
    parser.add_argument("--workers", type=int, help="DataLoader workers for the pipeline (default: bench's own: 0 on CPU, every core on a GPU)")
    parser.add_argument("--quiet", action="store_true", help="hide bench's progress bar (it goes to stderr)")
    parser.add_argument("--rounds", type=positive_int, default=2, help="alternating bare/pipeline rounds; the best rate of each counts (default: 2)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="ray: also run the pipeline on the Ray engine (a local cluster) and print its rate as a share of the local engine's")
    parser.add_argument("--measure", choices=("pipeline", "single", "bare", "prepare", "ray"), help=argparse.SUPPRESS)  # internal
    return parser


def random_init_spec(architecture: str):
    """An EncoderSpec for a timm architecture with seeded random weights (bench's `timm_random` loader)."""
    import timm
    import torch

    from bench.encoders.spec import IMAGENET_MEAN, IMAGENET_STD, EncoderSpec

    with torch.device("meta"):  # shapes and config only, no memory
        model = timm.create_model(architecture, pretrained=False, num_classes=0)
    config = dict(getattr(model, "pretrained_cfg", None) or {})
    interpolation = config.get("interpolation", "bicubic")
    return EncoderSpec(
        name=f"random/{architecture}",
        family="sup",
        loader="timm_random",
        architecture=architecture,
        pretrained="",
        input_size=int(config.get("input_size", (3, 224, 224))[-1]),
        embed_dim=int(model.num_features),
        mean=tuple(float(v) for v in config.get("mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in config.get("std", IMAGENET_STD)),
        interpolation=interpolation if interpolation in ("bicubic", "bilinear", "nearest") else "bicubic",
        pooling="timm num_classes=0",
        source="random initialisation (seed 0), benchmarks/extract.py",
    )


def resolve_encoder(name: str):
    if name.startswith("random:"):
        return random_init_spec(name.removeprefix("random:"))
    from bench import encoders

    return encoders.get(name)


def select(dataset, options, splits: Sequence[str], limit: int | None):
    """The records extract() would embed for these splits, in its order, cut to `limit`."""
    listing = dataset.list(options)
    records = [record for record in listing.records if record.split in splits]
    return records[:limit] if limit else records, listing


def predecode(records, ops, embedder):
    """Every item as the encoder's input tensor, by extraction's own prepare stage and the
    embedder's own normalisation."""
    import torch

    from bench.extraction.prepare import input_shape_of, prepare

    view = input_shape_of(embedder.spec)
    tensors = [embedder.inputs(prepare(record, op, [view]).pixels[view][None])[0] for record in records for op in ops]
    return torch.stack(tensors) if tensors else torch.empty(0)


def prepare_all(records, ops, specs) -> float:
    """Seconds for extraction's prepare stage over every item, one thread: the decoding work."""
    from bench.extraction.prepare import input_shape_of, prepare

    views = list(dict.fromkeys(input_shape_of(spec) for spec in specs))
    started = time.perf_counter()
    for record in records:
        for op in ops:
            prepare(record, op, views)
    return time.perf_counter() - started


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward(model, images, batch_size: int, device) -> tuple[float, int, int]:
    """Seconds for model(batch) over every image after one untimed warm-up batch; (seconds, images, batches)."""
    import torch

    batches = [images[start : start + batch_size].to(device) for start in range(0, len(images), batch_size)]
    _sync(device)
    with torch.inference_mode():
        model(batches[0])  # warm-up: kernel selection, allocator, oneDNN primitives
        _sync(device)
        started = time.perf_counter()
        for batch in batches:
            model(batch)
        _sync(device)
        seconds = time.perf_counter() - started
    return seconds, len(images), len(batches)


class OtherLoad:
    """CPU time used by other processes on this machine while a measurement ran (Linux /proc).

    The machine may be shared; a figure taken while something else was busy is not comparable.
    This process's descendants (DataLoader workers, a local Ray cluster) are part of the
    measurement, not others: a thread samples their CPU time while the measurement runs."""

    def __init__(self) -> None:
        import os
        import threading

        self.ticks = os.sysconf("SC_CLK_TCK")
        self.descendants: dict[int, float] = {}  # pid -> CPU seconds, as last seen
        self.stopped = threading.Event()
        self.start = self._sample()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _sample(self) -> tuple[float, float, float] | None:
        import os

        try:
            with open("/proc/stat", encoding="ascii") as handle:
                fields = [int(value) for value in handle.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / self.ticks  # everything but idle and iowait
        own = os.times()
        return busy, own.user + own.system, time.perf_counter()

    def _watch(self) -> None:
        import os

        while not self.stopped.wait(0.5):
            children: dict[int, list[int]] = {}
            cpu: dict[int, float] = {}
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                children.setdefault(int(fields[1]), []).append(int(name))
                cpu[int(name)] = (int(fields[11]) + int(fields[12])) / self.ticks
            waiting = list(children.get(os.getpid(), []))
            while waiting:
                pid = waiting.pop()
                self.descendants[pid] = max(self.descendants.get(pid, 0.0), cpu[pid])
                waiting += children.get(pid, [])

    def cores_used_by_others(self) -> float | None:
        """Average number of cores other processes kept busy since construction."""
        self.stopped.set()
        self.thread.join()
        end = self._sample()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        others = (end[0] - self.start[0]) - (end[1] - self.start[1]) - sum(self.descendants.values())
        return max(others, 0.0) / (end[2] - self.start[2])


def _load_note(monitor: OtherLoad) -> str:
    import os

    cores = monitor.cores_used_by_others()
    if cores is None:
        return ""
    total = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    note = f"other processes kept {cores:.2f} of {total} cores busy"
    return note + ("  WARNING: the machine was not idle; this figure is low" if cores > 0.1 * total else "")


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


def _setup(arguments):
    """(dataset, specs, ops, device, options, records) for this run, or an error message."""
    import torch

    from bench import data, processing
    from bench.data import DatasetOptions, Listing
    from bench.errors import BenchError
    from bench.registry import UnknownNameError
    from bench.runtime import pick_device

    try:
        dataset = data.get(arguments.dataset)
        specs = [resolve_encoder(name) for name in arguments.encoders]
        ops = [processing.get(name) for name in arguments.processings or processing.group("jpeg")]
    except (UnknownNameError, RuntimeError) as error:
        raise SystemExit(f"error: {error}")
    try:
        device = pick_device(arguments.device)
    except BenchError as error:
        raise SystemExit(f"error: {error} (torch {torch.__version__})")
    options = DatasetOptions(root=Path(arguments.root) if arguments.root else None)
    records, listing = select(dataset, options, arguments.splits, arguments.limit)
    if not records:
        raise SystemExit(f"error: dataset {dataset.name} has no images in splits {','.join(arguments.splits)}")
    if arguments.limit:  # extract() lists the dataset itself; hand it exactly the chosen records
        chosen, rejects = tuple(records), tuple(listing.rejects)
        dataset = dataclasses.replace(dataset, listing=lambda _options: Listing(list(chosen), list(rejects)))
    return dataset, specs, ops, device, options, records


def measure_pipeline(arguments, first_only: bool = False, engine: str = "local") -> dict:
    from rich.console import Console

    from bench import data
    from bench.extraction import ExtractionSettings, extract
    from bench.store import Store

    dataset, specs, ops, device, options, records = _setup(arguments)
    specs = specs[:1] if first_only else specs
    resolved = data.resolve(dataset, options)
    settings = ExtractionSettings(device=str(device), batch_size=arguments.batch_size, workers=arguments.workers, engine=engine)
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as folder:
        monitor = OtherLoad()
        started = time.perf_counter()
        summaries = extract(resolved, specs, [op.name for op in ops], Store(Path(folder) / "embeddings"),
                            splits=arguments.splits, settings=settings, console=Console(stderr=True, quiet=arguments.quiet))
        wall = time.perf_counter() - started
    return {
        "items": len(records) * len(ops), "seconds": wall, "forward": sum(s.forward_seconds for s in summaries.values()),
        "rows_written": sum(s.rows_written for s in summaries.values()), "rejected": sum(len(s.rejects) for s in summaries.values()),
        "load": _load_note(monitor),
    }


def measure_bare(arguments) -> dict:
    from bench import encoders
    from bench.extraction.embed import Embedder
    from bench.runtime import keep_freed_memory

    _, specs, ops, device, _, records = _setup(arguments)
    keep_freed_memory()  # the allocator setting extract() uses, so both sides get it
    seconds, count, batches = 0.0, 0, 0
    monitor = OtherLoad()
    for spec in specs:
        embedder = Embedder(encoders.load(spec), device)
        images = predecode(records, ops, embedder)
        one, count, batches = bare_forward(embedder.model, images, arguments.batch_size, device)
        seconds += one
        del embedder, images
    return {"items": count, "seconds": seconds, "batches": batches, "load": _load_note(monitor)}


def measure_prepare(arguments) -> dict:
    _, specs, ops, _, _, records = _setup(arguments)
    monitor = OtherLoad()
    return {"items": len(records) * len(ops), "seconds": prepare_all(records, ops, specs), "load": _load_note(monitor)}


MEASURES = {"pipeline": measure_pipeline, "single": lambda arguments: measure_pipeline(arguments, first_only=True),
            "bare": measure_bare, "prepare": measure_prepare, "ray": lambda arguments: measure_pipeline(arguments, engine="ray")}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.measure:  # one measurement in this fresh process, as JSON on the last line
        print(json.dumps(MEASURES[arguments.measure](arguments)))
        return 0

    import torch

    from bench.extraction import ExtractionSettings
    from bench.extraction.local import defaults
    from bench.runtime import cpu_count

    dataset, specs, ops, device, _, records = _setup(arguments)
    _, workers = defaults(device, ExtractionSettings(batch_size=arguments.batch_size, workers=arguments.workers))
    items = len(records) * len(ops)
    print(
        f"{dataset.name} ({'+'.join(arguments.splits)}, {len(records)} images) x {len(ops)} processing(s) = {items} items; "
        f"encoders {', '.join(spec.name for spec in specs)} on {device}, batch {arguments.batch_size}, pipeline workers {workers}, "
        f"torch threads {torch.get_num_threads()}, torch {torch.__version__}; {arguments.rounds} round(s), each measurement in a fresh process"
    )
    kinds = ["bare", "prepare", "pipeline"] + (["single"] if len(specs) > 1 else []) + (["ray"] if arguments.engine == "ray" else [])
    forwarded = [arg for arg in (argv if argv is not None else sys.argv[1:])]
    best: dict[str, dict] = {}
    for round_index in range(arguments.rounds):
        for which in kinds:
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *forwarded, "--measure", which],
                                  stdout=subprocess.PIPE, text=True, check=False)
            if done.returncode != 0 or not done.stdout.strip():
                print(f"error: the {which} measurement failed (exit {done.returncode})", file=sys.stderr)
                return 2
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            if which not in best or measured["seconds"] < best[which]["seconds"]:
                best[which] = measured
            extra = f", forward passes {measured['forward']:.2f} s, {measured['rows_written']} rows" if "forward" in measured else ""
            print(f"round {round_index + 1} {which:8s} {measured['items']:6d} items {measured['seconds']:8.2f} s "
                  f"{_rate(measured['items'], measured['seconds']):8.2f} items/s{extra}")
            if measured["load"]:
                print(f"         {measured['load']}")

    bare, prepare, pipeline = best["bare"]["seconds"], best["prepare"]["seconds"], best["pipeline"]["seconds"]
    cpu_ratio = pipeline / (bare + prepare)
    print(f"best of {arguments.rounds}: pipeline {pipeline:.2f} s ({_rate(items, pipeline):.1f} items/s); bare forward "
          f"{bare:.2f} s + prepare {prepare:.2f} s = {bare + prepare:.2f} s")
    print(f"CPU ratio: pipeline / (bare forward + prepare) = {cpu_ratio:.2f} (goal <= 1.1): {'met' if cpu_ratio <= 1.1 else 'not met'}")
    if "single" in best:
        many = (best["pipeline"]["seconds"] - best["pipeline"]["forward"]) / items
        one = (best["single"]["seconds"] - best["single"]["forward"]) / items
        ratio = many / one
        print(f"encoders: CPU-side time per item (pipeline minus its forward passes) {1000 * many:.2f} ms with "
              f"{len(specs)} encoders vs {1000 * one:.2f} ms with {specs[0].name} alone = {ratio:.2f}x (goal <= 1.25): "
              f"{'met' if ratio <= 1.25 else 'not met'}")
    if "ray" in best:
        ratio = best["pipeline"]["seconds"] / best["ray"]["seconds"]
        print(f"Ray engine: {_rate(items, best['ray']['seconds']):.1f} items/s (whole call, local cluster start included) vs local "
              f"engine {_rate(items, pipeline):.1f} items/s = {ratio:.2f} (goal >= 0.7): {'met' if ratio >= 0.7 else 'not met'}")
    if device.type == "cuda":
        decode_rate = _rate(items, prepare) * cpu_count()
        limit = min(_rate(items, bare), decode_rate)
        ratio = _rate(items, pipeline) / limit
        print(f"GPU ratio: pipeline {_rate(items, pipeline):.1f} items/s / min(bare forward {_rate(items, bare):.1f}, decode on "
              f"{cpu_count()} cores {decode_rate:.1f}) = {ratio:.2f} (goal >= 0.8): {'met' if ratio >= 0.8 else 'not met'}")
    else:
        print("GPU ratio: not measured (--device cuda on a machine with a GPU prints it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
