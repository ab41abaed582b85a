#!/usr/bin/env python
"""Every GPU path of bench in one command, each against a baseline timed in the same run.

Run from a checkout (bench need not be installed; this script puts the checkout on sys.path):

    python benchmarks/gpu.py              # on a CUDA machine: the full sizes, about 7 minutes on one H100
    python benchmarks/gpu.py --quick      # a smaller run of every row
    python benchmarks/gpu.py --only knn   # one part

It prints one table (rich when installed, plain text otherwise). Parts, in the order they run:

  search      bench.exact_search's torch backend on CUDA against the same search on the CPU (torch with
              CUDA hidden, in a child process, and FAISS CPU when installed) on the same vectors;
              FAISS GPU against torch CUDA too when FAISS sees a GPU. Neighbour lists must be
              identical except where float32 rounding reorders near-equal scores.
  probe       the linear-probe trainer (bench.tasks.linear_probe.train / predict / scores) on
              CUDA against the CPU on the same features: accuracies equal within 0.1 point.
  knn         knn_influence.run at ImageNet's shape, in memory on the GPU, against the GPU floor:
              one flat top-k search of the same queries over one version times the searches the
              protocol needs (K^2 + K x seeds); with peak device memory.
  extraction  per encoder and precision, bench's prepare stage in DataLoader workers (every core)
              and its embed stage on the device, against (a) the bare forward pass on
              device-resident tensors and (b) the prepare stage alone on every core. Last, since
              it reports row by row: if --limit cuts it short, the rows done are kept.

On a machine without CUDA the CPU-possible parts run at reduced sizes (labelled as such) in under
a minute, and the table says which rows need a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench.arguments import comma_list, non_negative_int, positive_int  # noqa: E402  (torch-free)

PARTS = ("search", "probe", "knn", "extraction")
ENCODER_LABELS = {
    "timm/vit_base_patch16_224.orig_in21k": "ViT-B/16",
    "dinov2/vitl14-reg": "ViT-L/14",
    "timm/convnext_base.fb_in22k_ft_in1k_384": "ConvNeXt-B",
    "effnet/lite0.random": "EfficientNet-Lite0",
}
EXTRACTION_GOAL = 0.8  # pipeline rate / min(bare forward, all-core decode)
KNN_GOAL = 1.0  # knn_influence.run time / the floor
PROBE_GOAL = 0.1  # accuracy points between CUDA and CPU
WARM_UP_BATCHES = 3  # untimed forward passes first: kernel selection, oneDNN primitives, the allocator
WARM_UP_QUERIES = 256  # queries of the untimed search that warms each floor
CEILING_RATE = {"cuda": 8000, "cpu": 400}  # images/s no pipeline here exceeds: sizes the item list
PROBE_LR, PROBE_WD = 1.0, 1e-6  # inside the probe search's ranges; fixed, so both devices train the same probes


@dataclass(frozen=True)
class Sizes:
    """How big each part runs; presets per device, any field can be set by a flag."""

    label: str
    encoders: tuple[str, ...]
    precisions: tuple[str, ...]
    images: int  # distinct generated JPEGs
    window: float  # seconds of steady state per throughput figure
    classes: int
    train_per_class: int
    val_per_class: int
    dim: int
    versions: int  # K processings
    seeds: int
    probe_train: int
    probe_val: int
    probe_epochs: int
    probe_seeds: int
    search_database: int
    search_queries: int
    limit: float  # seconds for the whole run; 0: none
    batch_size: int | None = None  # extraction batch; None: bench's default for the device


GPU_ENCODERS = ("timm/vit_base_patch16_224.orig_in21k", "dinov2/vitl14-reg", "timm/convnext_base.fb_in22k_ft_in1k_384")
PRESETS = {
    ("cuda", False): Sizes("full", GPU_ENCODERS, ("fp32", "bf16"), images=384, window=4.0, classes=1000, train_per_class=1281,
                           val_per_class=50, dim=768, versions=6, seeds=10, probe_train=50_000, probe_val=10_000, probe_epochs=100,
                           probe_seeds=10, search_database=200_000, search_queries=10_000, limit=480),
    ("cuda", True): Sizes("quick", GPU_ENCODERS[:1], ("fp32", "bf16"), images=128, window=2.0, classes=100, train_per_class=1281,
                          val_per_class=50, dim=768, versions=6, seeds=10, probe_train=10_000, probe_val=2_000, probe_epochs=100,
                          probe_seeds=10, search_database=50_000, search_queries=2_000, limit=180),
    ("cpu", False): Sizes("reduced for a CPU", ("effnet/lite0.random",), ("fp32",), images=24, window=2.0, classes=50,
                          train_per_class=128, val_per_class=10, dim=768, versions=6, seeds=10, probe_train=1_000, probe_val=500,
                          probe_epochs=100, probe_seeds=10, search_database=20_000, search_queries=1_000, limit=60),
    ("cpu", True): Sizes("reduced quick, CPU", ("effnet/lite0.random",), ("fp32",), images=8, window=0.5, classes=10, train_per_class=32,
                         val_per_class=4, dim=64, versions=6, seeds=10, probe_train=1_000, probe_val=200, probe_epochs=10, probe_seeds=2,
                         search_database=2_000, search_queries=100, limit=30, batch_size=2),
}
SIZE_FLAGS = ("encoders", "precisions", "images", "window", "classes", "train_per_class", "val_per_class", "dim", "versions", "seeds",
              "probe_train", "probe_val", "probe_epochs", "probe_seeds", "search_database", "search_queries", "limit", "batch_size")
NEEDS_GPU = (
    "search: torch CUDA against CPU, FAISS GPU against torch CUDA",
    "probe: CUDA against CPU",
    "extraction: bf16 rows and the pipeline's share of min(forward, decode) with every core decoding",
    "knn: ImageNet's full shape in GPU memory, and peak device memory",
)

EPILOG = f"""rows and their baselines (every baseline is timed in the same run, on the same machine):
  search      torch CUDA search time; baseline: the CPU searches. Check: rows (queries) whose
              neighbour lists differ, and how many of those differ only at float32 ties (the exact
              float64 scores of both lists agree within 2 x dim x 2^-24, float32's rounding bound
              for unit vectors). Data: Gaussian unit vectors with planted exact duplicates.
  probe       S probes side by side (10 label seeds), {PROBE_LR:g} learning rate, paper's schedule,
              every val image under every class as the test set; CUDA against the CPU, same features.
              Goal: mean accuracies within {PROBE_GOAL} point.
  extraction  images/s of the pipeline (prepare in DataLoader workers -> embed on the device, through
              bench.extraction.local's prepared batches, as `python -m bench extract` schedules them),
              against (a) model(batch) on tensors already on the device and (b) the prepare stage alone
              in the same workers. Share = pipeline / min(a, b); goal >= {EXTRACTION_GOAL} on a GPU.
              Random weights (no downloads), the paper's geometry (shorter side to the input size, centre
              crop) and each encoder's mean/std, on generated photo-like JPEGs (about 500 x 375) under
              one processing op (--processing). Rates are steady-state: the workers' start and first
              round of batches are timed apart ("start" in the notes).
  knn         knn_influence.run (every (test, pos, neg) triple and every uniform seed) on synthetic
              ImageNet-shaped vectors (class centre + processing shift + noise) against the floor:
              the fastest of bench.exact_search.plain_top_k (torch; FAISS GPU when present) and torch mm+topk
              in large blocks, one search of every val query over one version's train vectors, times
              K^2 + K x seeds. Goal <= {KNN_GOAL}x. Peak device memory: torch.cuda.max_memory_allocated.

sizes (flags below override any of them):
  full (CUDA)  {', '.join(GPU_ENCODERS)}; fp32 and bf16; knn 1000 classes x (1281 + 50), 768-d, K = 6,
               10 seeds; probe 50,000 x 768 over 6 classes; search 200,000 x 10,000 queries
  --quick      ViT-B/16 only, knn 100 classes, smaller probe and search
  CPU          reduced sizes (EfficientNet-Lite0 with random weights, fp32), under a minute on 2 cores;
               --quick: smaller still, a few seconds of work. --encoders adds others, e.g.
               timm/vit_base_patch16_224.orig_in21k (ViT-B/16: slow on a CPU, so not by default)

what a machine needs: torch (CUDA for the GPU rows). timm for the encoders; pyarrow and rich are
imported by bench's extraction and task modules; FAISS is optional (its rows say when it is missing). A part
whose package is missing says so in its row and the rest run. A part that fails prints its error in
its row. --limit bounds the whole run: when it passes, the table of what finished is printed and
the script exits with status 3.

exit status: 0 when every part ran (goals are reported, not enforced), 1 when a part failed,
2 for bad options, 3 when --limit stopped the run.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/gpu.py",
        description=(
            "Prove and time bench's GPU paths in one run: exact search (torch CUDA vs CPU), the probe trainer (CUDA vs CPU), "
            "extraction throughput (ViT-B/16, ViT-L/14, ConvNeXt-B at fp32 and bf16) and knn-influence at ImageNet's shape, "
            "each against a baseline measured in the same run; prints one table."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes for every part (see below)")
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when torch sees a GPU, else the CPU), cuda, cuda:N or cpu")
    parser.add_argument("--only", type=comma_list, help=f"comma-separated parts to run: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--limit", type=float, help="seconds for the whole run; 0 for none (default: 480 on CUDA, 60 on a CPU)")
    parser.add_argument("--plain", action="store_true", help="a plain-text table even where rich is installed (compact, for logs)")
    extraction = parser.add_argument_group("extraction")
    extraction.add_argument("--encoders", type=comma_list, help="comma-separated registered encoder names, built with random weights")
    extraction.add_argument("--precisions", type=comma_list, help="fp32, bf16, fp16, comma-separated (default: fp32,bf16 on CUDA)")
    extraction.add_argument("--images", type=positive_int, help="distinct generated JPEGs (default: 384 on CUDA)")
    extraction.add_argument("--window", type=float, help="seconds of steady state per throughput figure (default: 4 on CUDA)")
    extraction.add_argument("--processing", default="jpeg75_420", help="processing op the prepare stage applies (default: jpeg75_420)")
    extraction.add_argument("--batch-size", type=positive_int,
                            help="images per batch (default: bench's, 256 on CUDA, 8 on a CPU; 2 for the CPU's --quick)")
    extraction.add_argument("--workers", type=non_negative_int, help="DataLoader workers (default: bench's: each core on CUDA, 0 on a CPU)")
    knn = parser.add_argument_group("knn")
    knn.add_argument("--classes", type=positive_int, help="semantic classes (default: 1000 on CUDA)")
    knn.add_argument("--train-per-class", type=positive_int, help="train images per class (default: 1281 on CUDA)")
    knn.add_argument("--val-per-class", type=positive_int, help="val images per class (default: 50 on CUDA)")
    knn.add_argument("--dim", type=positive_int, help="embedding width (default: 768)")
    knn.add_argument("--versions", "-K", type=positive_int, help="processing versions K (default: 6)")
    knn.add_argument("--seeds", type=positive_int, help="uniform-setup seeds (default: 10)")
    knn.add_argument("--k", type=positive_int, default=10, help="neighbours, for knn and search (default: 10)")
    probe = parser.add_argument_group("probe")
    probe.add_argument("--probe-train", type=positive_int, help="train images (default: 50000 on CUDA)")
    probe.add_argument("--probe-val", type=positive_int, help="val images, each tested under every class (default: 10000 on CUDA)")
    probe.add_argument("--probe-epochs", type=positive_int, help="epochs (default: 100, as the paper)")
    probe.add_argument("--probe-seeds", type=positive_int, help="probes trained side by side (default: 10, as the paper's label seeds)")
    search = parser.add_argument_group("search")
    search.add_argument("--search-database", type=positive_int, help="database vectors (default: 200000 on CUDA)")
    search.add_argument("--search-queries", type=positive_int, help="queries (default: 10000 on CUDA)")
    parser.add_argument("--cpu-search", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)  # internal: the CPU side of `search`
    return parser


# ---- the table --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One line of the table."""

    name: str
    measured: str = ""
    baseline: str = ""
    check: str = ""
    notes: str = ""
    failed: bool = False
    goal_met: bool | None = None  # None: no goal applies here


COLUMNS = ("row", "measured", "baseline (same run)", "check", "notes")


class Board:
    """The rows found so far; printed at the end, or by the time limit with what finished."""

    def __init__(self, header: list[str], started: float):
        self.header = header
        self.started = started
        self.rows: list[Row] = []
        self.lock = threading.Lock()
        self.running: str | None = None

    def add(self, row: Row) -> None:
        with self.lock:
            self.rows.append(row)

    def snapshot(self) -> list[Row]:
        with self.lock:
            return list(self.rows)

    def run(self, part: str, measure: Callable[["Board"], None]) -> None:
        """Run one part; an error becomes its row and the next part goes on."""
        self.running = part
        say(self.started, f"{part} ...")
        try:
            measure(self)
        except Exception as error:  # a benchmark row, not a crash: report it and go on
            self.add(failure_row(part, error))
        finally:
            self.running = None


def failure_row(name: str, error: BaseException) -> Row:
    """A row for a part that could not run: a missing package is a skip, anything else a failure."""
    if isinstance(error, ModuleNotFoundError) and error.name and not error.name.startswith("bench"):
        return Row(name, measured=f"skipped: needs the package {error.name.split('.')[0]}, not installed here")
    traceback.print_exception(error, file=sys.stderr)
    message = " ".join(str(error).split())
    return Row(name, measured=f"FAILED: {type(error).__name__}: {message[:300]}", failed=True)


def render(board: Board, footer: Sequence[str], plain: bool = False) -> None:
    """Print the header, one table (rich if importable, else plain text) and the footer."""
    rows = board.snapshot()
    for line in board.header:
        print(line)
    cells = [(row.name, row.measured, row.baseline, row.check, row.notes) for row in rows]
    if not plain and importlib.util.find_spec("rich") is not None:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=True)
        for position, column in enumerate(COLUMNS):
            table.add_column(column, overflow="fold", no_wrap=position == 0)
        for row, values in zip(rows, cells):
            table.add_row(*values, style="red" if row.failed else None)
        Console(width=None if sys.stdout.isatty() else 200).print(table)
    else:
        widths = [max([len(column)] + [len(values[i]) for values in cells]) for i, column in enumerate(COLUMNS)]
        print(" | ".join(column.ljust(width) for column, width in zip(COLUMNS, widths)))
        print("-+-".join("-" * width for width in widths))
        for values in cells:
            print(" | ".join(value.ljust(width) for value, width in zip(values, widths)))
    for line in footer:
        print(line)
    sys.stdout.flush()


def say(started: float, message: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def verdict(value: float, goal: float, at_most: bool) -> tuple[str, bool]:
    met = value <= goal if at_most else value >= goal
    return ("met" if met else "NOT met"), met


def gib(count: float) -> str:
    return f"{count / 2**30:.1f} GiB"


def seconds_text(seconds: float) -> str:
    """Three significant digits, so that short timings of reduced runs still read."""
    return f"{seconds:.3g} s" if seconds < 100 else f"{seconds:.0f} s"


# ---- search: torch CUDA against the CPU -------------------------------------------------------

def search_vectors(count: int, queries: int, dim: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Unit Gaussian vectors with planted exact duplicates (exact ties) and queries that copy database rows."""
    from bench.vectors import normalise

    rng = np.random.default_rng(seed)
    database = normalise(rng.standard_normal((count, dim), dtype=np.float32))
    chosen = rng.permutation(count)
    copies = max(1, count // 100)
    database[chosen[:copies]] = database[chosen[copies:2 * copies]]
    query = normalise(rng.standard_normal((queries, dim), dtype=np.float32))
    echoes = max(1, queries // 10)
    query[:echoes] = database[rng.choice(count, echoes, replace=False)]
    return query, database


def tie_tolerance(dim: int) -> float:
    """How far two float32 computations of one unit-vector inner product can disagree: each is
    within dim x 2^-24 of the exact value (the summation bound, since sum |a_i b_i| <= 1)."""
    return 2.0 * dim * 2.0**-24


def compare_neighbours(first, second, queries: np.ndarray, database: np.ndarray) -> tuple[int, int, float]:
    """(queries whose neighbour rows differ, how many of those only at float32 ties, the largest
    exact score gap among them): a difference is a tie when the exact scores of both lists agree
    position by position within `tie_tolerance`, i.e. rows swapped or replaced among near-equal
    scores; a row out of order or a better row missed shows as a gap."""
    differing = np.flatnonzero((first.rows != second.rows).any(axis=1))
    tolerance = tie_tolerance(database.shape[1])
    ties, largest = 0, 0.0
    for query in differing:
        exact = [database[rows[rows >= 0]].astype(np.float64) @ queries[query].astype(np.float64)
                 for rows in (first.rows[query], second.rows[query])]
        gap = float(np.max(np.abs(exact[0] - exact[1]))) if len(exact[0]) == len(exact[1]) else math.inf
        largest = max(largest, gap)
        ties += int(gap <= tolerance)
    return len(differing), ties, largest


def torch_search_on_cpu(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[Any, float]:
    """bench.exact_search's torch backend in a child process that sees no GPU: (neighbours, search seconds)."""
    from bench.exact_search import Neighbours

    with tempfile.TemporaryDirectory(prefix="bench-gpu-search-") as folder:
        given, found = Path(folder) / "in.npz", Path(folder) / "out.npz"
        np.savez(given, queries=queries, database=database, k=np.int64(k))
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--cpu-search", str(given), str(found)],
                              env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the CPU search child failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        with np.load(found) as result:
            return Neighbours(result["scores"], result["rows"]), float(result["seconds"])


def cpu_search_child(given: str, found: str) -> int:
    """The child side of `torch_search_on_cpu`."""
    import torch

    from bench import exact_search

    if torch.cuda.is_available():
        print("error: the CPU search child sees a GPU (CUDA_VISIBLE_DEVICES was not honoured)", file=sys.stderr)
        return 2
    with np.load(given) as data:
        queries, database, k = data["queries"], data["database"], int(data["k"])
    started = time.perf_counter()
    result = exact_search.search(queries, database, k, backend="torch")
    np.savez(found, rows=result.rows, scores=result.scores, seconds=np.float64(time.perf_counter() - started))
    return 0


def timed_search(queries: np.ndarray, database: np.ndarray, k: int, backend: str) -> tuple[Any, float]:
    from bench import exact_search

    started = time.perf_counter()
    found = exact_search.search(queries, database, k, backend=backend)
    return found, time.perf_counter() - started


def agreement(first, second, queries: np.ndarray, database: np.ndarray) -> tuple[str, bool]:
    """How two searches' neighbours compare, and whether every difference is a float32 tie."""
    differing, ties, largest = compare_neighbours(first, second, queries, database)
    gap = f" (largest exact score gap {largest:.1e})" if differing else ""
    return f"{differing} of {len(queries):,} rows differ, {ties} of them at float32 ties{gap}", differing == ties


def search_part(sizes: Sizes, device, arguments: argparse.Namespace, board: Board) -> None:
    """torch CUDA against the CPU searches (on a CPU: torch against FAISS, as a stand-in)."""
    from bench import exact_search

    queries, database = search_vectors(sizes.search_database, sizes.search_queries, sizes.dim)
    k = arguments.k
    shape = f"{len(queries):,} queries x {len(database):,} rows, {sizes.dim}-d, k = {k}"
    have_faiss = importlib.util.find_spec("faiss") is not None
    if device.type != "cuda":
        torch_cpu, cpu_s = timed_search(queries, database, k, "torch")
        if not have_faiss:
            board.add(Row("search · torch CUDA vs CPU", measured=f"torch CPU {cpu_s:.2f} s (reduced)", check="needs a GPU",
                          notes="faiss-cpu: not installed here"))
            return
        found, seconds = timed_search(queries, database, k, "faiss-cpu")
        text, same = agreement(torch_cpu, found, queries, database)
        board.add(Row("search · CPU stand-in: torch CPU vs faiss-cpu (reduced)", measured=f"torch CPU {cpu_s:.2f} s",
                      baseline=f"faiss-cpu {seconds:.2f} s", check=f"{text}; torch CUDA vs CPU needs a GPU", notes=shape, goal_met=same))
        return
    torch_cuda, cuda_s = timed_search(queries, database, k, "torch")
    sides: list[tuple[str, Callable[[], tuple[Any, float]]]] = [("torch CPU", lambda: torch_search_on_cpu(queries, database, k))]
    if have_faiss:
        sides.append(("faiss-cpu", lambda: timed_search(queries, database, k, "faiss-cpu")))
    baselines, checks, every_tie = [], [], True
    for name, run in sides:
        found, seconds = run()
        text, same = agreement(torch_cuda, found, queries, database)
        every_tie &= same
        baselines.append(f"{name} {seconds:.2f} s")
        checks.append(f"vs {name}: {text}")
    board.add(Row("search · torch CUDA vs CPU", measured=f"torch CUDA {cuda_s:.2f} s (index build included)",
                  baseline="; ".join(baselines),
                  check="; ".join(checks) + f" (goal: differences only at ties) {'met' if every_tie else 'NOT met'}", goal_met=every_tie,
                  notes=shape + ("" if have_faiss else "; faiss-cpu: not installed here")))
    if exact_search.faiss_gpus() == 0:
        board.add(Row("search · FAISS GPU vs torch CUDA", measured='skipped: FAISS sees no GPU here (pip install -e ".[gpu]")'))
        return
    found, seconds = timed_search(queries, database, k, "faiss-gpu")
    text, same = agreement(torch_cuda, found, queries, database)
    board.add(Row("search · FAISS GPU vs torch CUDA", measured=f"faiss-gpu {seconds:.2f} s", baseline=f"torch CUDA {cuda_s:.2f} s",
                  check=text + f" (goal: differences only at ties) {'met' if same else 'NOT met'}", notes=shape, goal_met=same))


# ---- probe: the trainer on CUDA against the CPU -----------------------------------------------

def probe_features(train: int, val: int, dim: int, classes: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(classes, train, dim) pool and (classes x val, dim) test features, unit rows: a scene per
    image shared by every class plus a weak per-class direction, like a processing trace."""
    from bench.vectors import normalise

    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((classes, dim), dtype=np.float32) * np.float32(0.06)

    def versions(count: int) -> np.ndarray:
        scenes = rng.standard_normal((count, dim), dtype=np.float32)
        return np.stack([normalise(scenes + directions[c] + np.float32(0.05) * rng.standard_normal((count, dim), dtype=np.float32))
                         for c in range(classes)])

    return versions(train), versions(val).reshape(classes * val, dim)


def train_probes(pool: np.ndarray, test: np.ndarray, choice: np.ndarray, sizes: Sizes, device) -> tuple[np.ndarray, float]:
    """Train the probes on `device` from the same arrays: (accuracy per probe in %, seconds)."""
    import torch

    from bench.tasks.linear_probe import ProbeSettings, TrainingRows, predict, scores, train

    classes, count, _ = pool.shape
    synchronise(device)
    started = time.perf_counter()
    picked = torch.as_tensor(choice, device=device)
    rows = TrainingRows(torch.as_tensor(pool, device=device), torch.arange(count, device=device), picked, picked)
    probes = train(rows, classes, [PROBE_LR] * len(choice), [PROBE_WD] * len(choice), [1000 + s for s in range(len(choice))],
                   ProbeSettings(epochs=sizes.probe_epochs))
    test_labels = torch.arange(classes, device=device).repeat_interleave(len(test) // classes)
    accuracy = scores(predict(probes, torch.as_tensor(test, device=device)), test_labels).acc1
    synchronise(device)
    return accuracy, time.perf_counter() - started


def probe_part(sizes: Sizes, device, arguments: argparse.Namespace, board: Board) -> None:
    """The same probes trained on the CPU and on CUDA, from the same features and label draws."""
    import torch

    classes = sizes.versions
    pool, test = probe_features(sizes.probe_train, sizes.probe_val, sizes.dim, classes)
    choice = np.random.default_rng(3).integers(0, classes, size=(sizes.probe_seeds, sizes.probe_train))
    shape = (f"{sizes.probe_seeds} probes x {sizes.probe_train:,} train x {sizes.dim}-d, {classes} classes, {sizes.probe_epochs} epochs; "
             f"test {len(test):,} rows; chance {100 / classes:.1f} %")
    cpu_accuracy, cpu_s = train_probes(pool, test, choice, sizes, torch.device("cpu"))
    cpu_text = f"CPU {cpu_s:.1f} s, {cpu_accuracy.mean():.2f} % ({torch.get_num_threads()} threads)"
    if device.type != "cuda":
        board.add(Row("probe · CUDA vs CPU (reduced)", measured=cpu_text, check="needs a GPU", notes=shape))
        return
    gpu_accuracy, gpu_s = train_probes(pool, test, choice, sizes, device)
    gap = abs(float(gpu_accuracy.mean()) - float(cpu_accuracy.mean()))
    word, met = verdict(gap, PROBE_GOAL, at_most=True)
    board.add(Row("probe · CUDA vs CPU", measured=f"CUDA {gpu_s:.1f} s, {gpu_accuracy.mean():.2f} %", baseline=cpu_text,
                  check=f"accuracy gap {gap:.3f} points (goal <= {PROBE_GOAL}) {word}; CUDA {cpu_s / gpu_s:.1f}x faster",
                  notes=f"{shape}; largest per-probe gap {np.abs(gpu_accuracy - cpu_accuracy).max():.2f} points (different random streams)",
                  goal_met=met))


# ---- extraction: prepare in workers, embed on the device --------------------------------------

def synthetic_photo(index: int):
    """A photo-sized RGB image with structure at every scale (smooth shading, hard-edged shapes,
    sensor-like grain), deterministic per index; about 500 x 375, one in four portrait."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([index, 17])
    long_side = int(rng.integers(460, 541))
    width, height = (long_side, long_side * 3 // 4) if index % 4 != 3 else (long_side * 3 // 4, long_side)
    canvas = np.full((height, width, 3), 128.0, dtype=np.float32)
    for cells, amplitude in ((3, 70.0), (12, 35.0), (48, 15.0)):  # coarse shading strong, fine texture weak
        coarse = rng.integers(0, 256, size=(max(2, cells * height // width), cells, 3), dtype=np.uint8)
        layer = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
        canvas += amplitude * (layer - 127.5) / 127.5
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        left, top = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = (left, top, left + int(rng.integers(20, width // 2)), top + int(rng.integers(20, height // 2)))
        colour = tuple(int(value) for value in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    grain = rng.normal(0.0, 4.0, size=(height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8))


def write_photos(folder: Path, count: int) -> list:
    """`count` generated JPEGs (quality 90, 4:2:0, as a camera writes them) as dataset records."""
    from bench.data import ImageRecord

    records = []
    for index in range(count):
        path = folder / f"photo{index:04d}.jpg"
        synthetic_photo(index).save(path, format="JPEG", quality=90, subsampling="4:2:0")
        records.append(ImageRecord(image_id=path.stem, split="val", label=0, label_name="synthetic", path=str(path)))
    return records


def synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Throughput:
    """A steady-state rate and what it took to reach it."""

    rate: float  # images/s over the steady-state window
    start: float  # seconds until the window opened (workers' start and first round)
    first: Any  # the first batch, for the bare forward pass


def steady_rate(batches: Iterable[Any], handle: Callable[[Any], int], skip: int, seconds: float) -> Throughput:
    """Images/s once the first `skip` batches (the workers' first round, which arrives at once)
    are through. The window closes after `seconds`, on a whole number of rounds so that bursty
    arrivals are not cut mid-round, or at once when `handle` kept this process busy (at least 90 %
    of the window): then arrivals are paced by the consumer, not by rounds."""
    started = time.perf_counter()
    opened, counted, busy, seen, first, end = None, 0, 0.0, 0, None, started
    for batch in batches:
        began = time.perf_counter()
        images = handle(batch)
        end = time.perf_counter()
        seen += 1
        if first is None:
            first = batch
        if seen == skip:
            opened = end
        elif opened is not None:
            counted += images
            busy += end - began
            if end - opened >= seconds and ((seen - skip) % skip == 0 or busy >= 0.9 * (end - opened)):
                break
    if opened is None or counted == 0 or end <= opened:
        raise RuntimeError(f"only {seen} batch(es) arrived: too few items for a steady-state window; raise --window or --images")
    return Throughput(counted / (end - opened), opened - started, first)


def measure_loader(
    plan, view, batch_size: int, workers: int, device, seconds: float, handle: Callable[[Any], int] | None = None
) -> Throughput:
    """Batches from the local engine's own prepared batches (DataLoader workers, or prefetching, as
    `python -m bench extract` schedules them); `handle` embeds them, or nothing does (decode only)."""
    from bench.extraction.local import prepared_batches
    from bench.extraction.settings import ExtractionSettings

    settings = ExtractionSettings(device=str(device), batch_size=batch_size, workers=workers)

    def count(batch) -> int:
        return len(batch.grouped.get(view, ((), None))[0])

    return steady_rate(prepared_batches(plan, settings, device), handle or count, max(workers, 1), seconds)


def bare_forward(embedder, pixels, seconds: float) -> float:
    """Images/s of model(batch) alone on inputs already normalised on the device, after warm-up."""
    import torch

    inputs = embedder.inputs(pixels)
    device = embedder.device
    with torch.inference_mode():
        for _ in range(WARM_UP_BATCHES):
            embedder.model(inputs)
            synchronise(device)
        started, images = time.perf_counter(), 0
        while True:
            embedder.model(inputs)
            synchronise(device)
            images += len(inputs)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                return images / elapsed


def random_encoder(spec):
    """The spec's architecture with seeded random weights: no download, the real model's cost."""
    import torch

    from bench.encoders import loaders
    from bench.encoders.preprocess import paper_preprocess

    torch.manual_seed(spec.init_seed)
    model = loaders.architecture(spec).eval().requires_grad_(False)
    return loaders.LoadedEncoder(spec=spec, model=model, preprocess=paper_preprocess(spec), weights_id="random init (benchmark)")


def extraction_part(sizes: Sizes, device, arguments: argparse.Namespace, board: Board) -> None:
    """Per encoder and precision: the pipeline against the bare forward pass and decoding alone."""
    import torch

    from bench import encoders, processing
    from bench.extraction.embed import Embedder
    from bench.extraction.local import defaults
    from bench.extraction.plan import Plan, Target, WorkItem
    from bench.extraction.prepare import input_shape_of
    from bench.extraction.settings import ExtractionSettings
    from bench.runtime import cpu_count, keep_freed_memory

    keep_freed_memory()  # as extraction does
    batch_size, workers = defaults(device, ExtractionSettings(batch_size=sizes.batch_size, workers=arguments.workers))
    op = processing.get(arguments.processing)
    on_gpu = device.type == "cuda"
    suffix = "" if on_gpu else " (reduced)"
    items = batch_size * (2 * max(workers, 1) + 2) + math.ceil(sizes.window * CEILING_RATE[device.type])
    with tempfile.TemporaryDirectory(prefix="bench-gpu-photos-") as folder:
        records = write_photos(Path(folder), sizes.images)
        say(board.started, f"extraction: {len(records)} JPEGs written; batch {batch_size}, {workers} workers, {items} items each")
        decoded: dict[Any, Throughput] = {}
        for name in sizes.encoders:
            label = ENCODER_LABELS.get(name, name)
            try:
                spec = encoders.get(name)
                view = input_shape_of(spec)
                plan = Plan(dataset="gpu-benchmark", targets=(Target(spec, {}, view),),
                            items=[WorkItem(records[i % len(records)], op, (0,)) for i in range(items)], stored={}, since={})
                if view not in decoded:
                    say(board.started, f"extraction: decode alone at {view.size} px")
                    decoded[view] = measure_loader(plan, view, batch_size, workers, device, sizes.window)
                decode = decoded[view]
                loaded = random_encoder(spec)
            except Exception as error:
                board.add(failure_row(f"extraction · {label}{suffix}", error))
                continue
            for precision in sizes.precisions:
                row = f"extraction · {label} {precision}{suffix}"
                try:
                    say(board.started, f"extraction: {label} {precision}")
                    embedder = Embedder(loaded, device, precision)
                    pixels = decode.first.grouped[view][1]
                    forward = bare_forward(embedder, pixels, sizes.window)

                    def embed(batch, embedder=embedder) -> int:
                        indices, batch_pixels = batch.grouped.get(view, ((), None))
                        if len(indices):
                            embedder(batch_pixels)
                        return len(indices)

                    pipeline = measure_loader(plan, view, batch_size, workers, device, sizes.window, embed)
                    share = pipeline.rate / min(forward, decode.rate)
                    if on_gpu:
                        word, met = verdict(share, EXTRACTION_GOAL, at_most=False)
                        check = f"{share:.2f} of min(forward, decode) (goal >= {EXTRACTION_GOAL}) {word}"
                    else:
                        met, check = None, f"{share:.2f} of min(forward, decode); the goal applies on a GPU"
                    board.add(Row(row, measured=f"pipeline {pipeline.rate:,.0f} img/s",
                                  baseline=f"forward {forward:,.0f} img/s; decode {decode.rate:,.0f} img/s ({max(workers, 1)} "
                                           f"{'workers' if workers else 'thread'}, {cpu_count()} cores)",
                                  check=check, goal_met=met,
                                  notes=f"{spec.input_size} px {spec.interpolation}, {op.name}, batch {batch_size}; start "
                                        f"{pipeline.start:.1f} s (decode alone {decode.start:.1f} s)"))
                    del embedder
                except Exception as error:
                    board.add(failure_row(row, error))
                finally:
                    if on_gpu:
                        torch.cuda.empty_cache()
            del loaded
            if on_gpu:
                torch.cuda.empty_cache()
    if not on_gpu:
        board.add(Row("extraction · bf16, the share goal", check="needs a GPU",
                      notes=f"the rows above ran on the CPU, decoding in {f'{workers} workers' if workers else 'this process'}"))


# ---- knn-influence at ImageNet's shape --------------------------------------------------------

def imagenet_shaped(sizes: Sizes, device) -> tuple[Any, Any, list[str]]:
    """Train and val SplitVectors under K versions: class centre + 5 x noise per image, plus a
    per-version shift and 0.3 x noise; drawn on the device (fast at full size), kept as numpy."""
    import torch

    from bench.vectors import SplitVectors

    names = [f"p{v}" for v in range(sizes.versions)]
    generator = torch.Generator(device=device).manual_seed(7)
    centres = torch.randn((sizes.classes, sizes.dim), generator=generator, device=device)
    shifts = 0.35 * torch.randn((sizes.versions, sizes.dim), generator=generator, device=device)

    def split(per_class: int, name: str):
        labels = np.repeat(np.arange(sizes.classes, dtype=np.int64), per_class)
        base = centres[torch.from_numpy(labels).to(device)]
        base += 5.0 * torch.randn(base.shape, generator=generator, device=device)
        vectors = {}
        for v, version in enumerate(names):
            vectors[version] = (base + shifts[v] + 0.3 * torch.randn(base.shape, generator=generator, device=device)).cpu().numpy()
        ids = np.asarray([f"c{label:04d}/{name}/{i:05d}" for label in range(sizes.classes) for i in range(per_class)])
        return SplitVectors(ids, labels, vectors)

    return split(sizes.train_per_class, "train"), split(sizes.val_per_class, "val"), names


def floor_searches(database: np.ndarray, k: int, device) -> dict[str, Callable[[np.ndarray], Callable[[], object]]]:
    """Ways to run one flat top-k search of a query matrix over `database`, each a factory that
    prepares the search and returns it: bench.exact_search.plain_top_k per backend present, and torch
    mm + topk over large query blocks (the bare device work)."""
    import torch

    from bench import exact_search, versioned_search

    found: dict[str, Callable[[np.ndarray], Callable[[], object]]] = {
        "plain_top_k torch": lambda queries: exact_search.plain_top_k(queries, database, k, "torch")}
    if device.type == "cuda" and exact_search.faiss_gpus() > 0:
        found["plain_top_k faiss-gpu"] = lambda queries: exact_search.plain_top_k(queries, database, k, "faiss-gpu")
    if device.type != "cuda" and importlib.util.find_spec("faiss") is not None:
        found["plain_top_k faiss-cpu"] = lambda queries: exact_search.plain_top_k(queries, database, k, "faiss-cpu")
    base = torch.from_numpy(database).to(device)
    if device.type == "cuda":
        budget = int(torch.cuda.mem_get_info(device)[0] * versioned_search.BLOCK_FRACTION_GPU)
    else:
        budget = versioned_search.BLOCK_BYTES_CPU
    block = max(1, min(4096, budget // (4 * len(database))))

    def blocked(queries: np.ndarray) -> Callable[[], object]:
        query = torch.from_numpy(queries).to(device)

        def run() -> list:
            out = []
            for start in range(0, len(query), block):
                top = torch.topk(query[start:start + block] @ base.T, k, dim=1)
                out.append((top.values.cpu(), top.indices.cpu()))
            return out

        return run

    found[f"torch mm+topk, blocks of {block}"] = blocked
    return found


def time_floors(queries: np.ndarray, database: np.ndarray, k: int, device) -> dict[str, float]:
    """Seconds of one search of every query by each floor, after a warm-up search of a few queries."""
    times = {}
    for label, prepare in floor_searches(database, k, device).items():
        prepare(queries[:WARM_UP_QUERIES])()  # threads, allocator, kernels
        search = prepare(queries)
        synchronise(device)
        began = time.perf_counter()
        search()
        synchronise(device)
        times[label] = time.perf_counter() - began
        del search
    return times


def knn_part(sizes: Sizes, device, arguments: argparse.Namespace, board: Board) -> None:
    """knn_influence.run in memory against the search floor, with peak device memory."""
    import torch

    from bench.tasks import knn_influence
    from bench.vectors import normalise

    on_gpu = device.type == "cuda"
    full = (sizes.classes, sizes.train_per_class, sizes.val_per_class, sizes.dim) == (1000, 1281, 50, 768)
    shape = (f"{sizes.classes} classes x ({sizes.train_per_class} train + {sizes.val_per_class} val), {sizes.dim}-d, "
             f"K = {sizes.versions}, {sizes.seeds} seeds, k = {arguments.k}")
    name = "knn-influence" + ("" if on_gpu and full else " (reduced)")
    train, val, names = imagenet_shaped(sizes, device)
    say(board.started, f"knn: vectors ready ({gib(sum(v.nbytes for v in train.vectors.values()))} of train versions)")
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    outcome = knn_influence.run(train, val, names, k=arguments.k, seeds=range(sizes.seeds), backend="auto")
    synchronise(device)
    run_s = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if on_gpu else None
    say(board.started, f"knn: run {run_s:.1f} s; timing the floor")
    one = time_floors(normalise(val.vectors[names[0]]), normalise(train.vectors[names[0]]), arguments.k, device)
    if on_gpu:
        torch.cuda.empty_cache()
    searches = sizes.versions**2 + sizes.versions * sizes.seeds
    fastest = min(one, key=one.get)
    floor = one[fastest] * searches
    ratio = run_s / floor
    word, met = verdict(ratio, KNN_GOAL, at_most=True)
    versions_bytes = sum(v.nbytes for v in train.vectors.values())
    memory = (f"peak GPU memory {gib(peak)} = {peak / versions_bytes:.2f}x the {sizes.versions} train versions ({gib(versions_bytes)})"
              if peak is not None else "peak device memory: needs a GPU")
    judged = on_gpu and full
    board.add(Row(
        name, measured=f"run {seconds_text(run_s)} ({'GPU' if on_gpu else 'CPU'}, in memory)",
        baseline=f"floor {searches} x {seconds_text(one[fastest])} ({fastest}) = {seconds_text(floor)}",
        check=f"{ratio:.2f}x the floor " + (f"(goal <= {KNN_GOAL}) {word}" if judged else "(the goal is for the full shape on a GPU)"),
        goal_met=met if judged else None,
        notes=f"{shape}; {memory}; one search: " + ", ".join(f"{label} {seconds_text(seconds)}" for label, seconds in one.items())
              + f"; all_same {outcome.setups()['all_same']:.1f} %",
    ))


# ---- driver -----------------------------------------------------------------------------------

MEASURES: dict[str, Callable[[Sizes, Any, argparse.Namespace, Board], None]] = {
    "search": search_part, "probe": probe_part, "extraction": extraction_part, "knn": knn_part,
}


def choose_sizes(arguments: argparse.Namespace, device_type: str) -> Sizes:
    """The device's preset, with every size a flag gives."""
    preset = PRESETS[(device_type, arguments.quick)]
    given = {name: getattr(arguments, name) for name in SIZE_FLAGS if getattr(arguments, name) is not None}
    sizes = dataclasses.replace(preset, **given)
    return dataclasses.replace(sizes, label=sizes.label + (" (changed by flags)" if set(given) - {"limit"} else ""))


def header(sizes: Sizes, device, parts: Sequence[str]) -> list[str]:
    """What ran where: device, cores, versions, sizes and which optional packages are present."""
    import torch

    from bench.runtime import cpu_count

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    optional = ", ".join(f"{name} {'yes' if importlib.util.find_spec(name) else 'MISSING'}"
                         for name in ("timm", "faiss", "pyarrow", "rich", "lancedb", "open_clip"))
    return [
        f"bench GPU benchmark on {where} ({device}), {cpu_count()} cores, torch {torch.__version__}, python {sys.version.split()[0]}",
        f"sizes: {sizes.label}; parts: {', '.join(parts)}; packages: {optional}",
    ]


def pick(requested: str):
    """The torch device to measure on; a device that is absent, or not CUDA or the CPU, is a ValueError."""
    import torch

    from bench.runtime import pick_device

    device = pick_device(requested)  # its UsageError is a ValueError that says what to use instead
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"--device {requested}: this benchmark runs on cuda or cpu")
    return torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" and device.index is None else device


def refuse(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None, *, hard_limit: bool = True) -> int:
    """Run the parts and print the table. `hard_limit`: when --limit passes, print what finished
    and end the process (a script's behaviour; callers in-process pass False)."""
    arguments = build_parser().parse_args(argv)
    if arguments.cpu_search:
        return cpu_search_child(*arguments.cpu_search)
    started = time.perf_counter()
    parts = list(arguments.only or PARTS)
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        return refuse(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if importlib.util.find_spec("torch") is None:
        return refuse("torch is not installed; every part needs it")
    try:
        device = pick(arguments.device)
    except ValueError as error:
        return refuse(str(error))
    sizes = choose_sizes(arguments, device.type)
    board = Board(header(sizes, device, parts), started)
    finished = threading.Event()

    def footer() -> list[str]:
        rows = board.snapshot()
        goals = [row.goal_met for row in rows if row.goal_met is not None]
        lines = [f"goals met: {sum(goals)} of {len(goals)}; wall time {time.perf_counter() - started:.0f} s"]
        if device.type != "cuda":
            lines.append("needs a GPU (run this script on a CUDA machine for these): " + "; ".join(NEEDS_GPU))
        return lines

    def stop() -> None:
        if finished.is_set():
            return
        pending = [part for part in parts if part == board.running or not any(row.name.startswith(part) for row in board.snapshot())]
        for part in pending:
            board.add(Row(part, measured=f"stopped: the run reached --limit {sizes.limit:.0f} s", failed=True))
        render(board, footer(), arguments.plain)
        os._exit(3)

    timer = None
    if hard_limit and sizes.limit > 0:
        timer = threading.Timer(sizes.limit, stop)
        timer.daemon = True
        timer.start()
    for part in parts:
        board.run(part, lambda board, part=part: MEASURES[part](sizes, device, arguments, board))
    finished.set()
    if timer is not None:
        timer.cancel()
    render(board, footer(), arguments.plain)
    return 1 if any(row.failed for row in board.snapshot()) else 0


if __name__ == "__main__":
    sys.exit(main())
