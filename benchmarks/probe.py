#!/usr/bin/env python
"""Processing probe: bench's full 30-trial search against one scikit-learn LogisticRegression fit.

Run from the project root:

    python benchmarks/probe.py --quick                 # 2000 train images, 256-d, seconds
    python benchmarks/probe.py                         # default size (see --help)
    python benchmarks/probe.py --home . --dataset demo --encoder effnet/lite0.in1k --group jpeg

Both sides solve the same problem, the processing probe of docs/protocol.md#probe-processing: every train image
under one processing class drawn at random (seed 0's draw), L2-normalised, tested on every val
image under every class.

(a) bench: bench.tasks.probe_processing.processing_probe: the Optuna TPE search (30 trials of 100 epochs,
    SGD, batch 1024, on an 80/20 split of train, seed 22), then the final fit on all of train
    with the best (lr, wd) for each label seed (--seeds, default 1: seed 0 only).
(b) scikit-learn: LogisticRegression() with its defaults (L-BFGS, C = 1, multinomial) fitted
    once on seed 0's training rows: what a quick probe without a search would do.

Printed: wall time of the search, of the final fit, of the sklearn fit; both test accuracies;
and the search time over the sklearn time. The search buys the paper's protocol (tuned lr and
weight decay, final-epoch SGD), not speed; the ratio says what it costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench import processing  # noqa: E402
from bench.arguments import positive_int  # noqa: E402
from bench.vectors import SplitVectors  # noqa: E402
from bench.tasks.probe_processing import class_assignment, processing_probe  # noqa: E402
from bench.tasks.linear_probe import ProbeSettings  # noqa: E402
from bench.vectors import normalise  # noqa: E402

DEFAULTS = {"train": 6_000, "val": 1_000, "dim": 1280}  # 1280: EfficientNet-Lite0's embedding width
QUICK = {"train": 2_000, "val": 500, "dim": 256}

EPILOG = """synthetic embeddings (float32, seeded), when no --dataset is given:
  Each image has a random scene vector (the same under every processing class); processing
  class j adds its own random direction scaled by --signal plus per-version noise. The scene
  dominates, so the probe has to find a weak direction, like a real processing trace.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/probe.py",
        description="Time bench's 30-trial probe search against a scikit-learn LogisticRegression fit, with both accuracies.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_argument_group("synthetic size")
    size.add_argument("--train", type=positive_int, help=f"train images (default: {DEFAULTS['train']}; --quick: {QUICK['train']})")
    size.add_argument("--val", type=positive_int, help=f"val images (default: {DEFAULTS['val']}; --quick: {QUICK['val']})")
    size.add_argument("--dim", type=positive_int, help=f"embedding width (default: {DEFAULTS['dim']}; --quick: {QUICK['dim']})")
    size.add_argument("--processings", "-K", type=positive_int, default=6, help="processing classes K (default: 6, like the JPEG group)")
    size.add_argument("--signal", type=float, default=0.06, help="length of the processing direction relative to the scene (default: 0.06)")
    size.add_argument("--quick", action="store_true", help="a small problem that runs in seconds")
    stored = parser.add_argument_group("real embeddings instead (from `python -m bench run probe-processing` or `extract`)")
    stored.add_argument("--home", help="workspace holding embeddings/ (default: synthetic data)")
    stored.add_argument("--dataset", help="dataset key in the store, e.g. demo")
    stored.add_argument("--encoder", help="encoder whose table to read, e.g. effnet/lite0.in1k")
    stored.add_argument("--group", default="jpeg", help=f"processing group: {', '.join(processing.GROUPS)} (default: jpeg)")
    parser.add_argument("--trials", type=positive_int, default=30, help="search trials (default: 30, as the paper)")
    parser.add_argument("--epochs", type=positive_int, default=100, help="epochs per probe (default: 100, as the paper)")
    parser.add_argument("--seeds", type=positive_int, default=1, help="label seeds of the final stage (default: 1; the paper: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic embeddings (default: 0)")
    return parser


def synthetic(arguments: argparse.Namespace) -> tuple[SplitVectors, SplitVectors, tuple[str, ...]]:
    sizes = QUICK if arguments.quick else DEFAULTS
    train_count, val_count, dim = (getattr(arguments, key) or sizes[key] for key in ("train", "val", "dim"))
    rng = np.random.default_rng(arguments.seed)
    names = tuple(f"class{j}" for j in range(arguments.processings))
    directions = rng.normal(size=(len(names), dim)) * arguments.signal

    def split(count: int, prefix: str) -> SplitVectors:
        scenes = rng.normal(size=(count, dim))
        vectors = {name: (scenes + directions[j] + 0.05 * rng.normal(size=(count, dim))).astype(np.float32)
                   for j, name in enumerate(names)}
        return SplitVectors(np.array([f"{prefix}{i:07d}" for i in range(count)]), np.zeros(count, dtype=np.int64), vectors)

    return split(train_count, "train"), split(val_count, "val"), names


def stored(arguments: argparse.Namespace) -> tuple[SplitVectors, SplitVectors, tuple[str, ...]]:
    from bench.store import Store
    from bench.workspace import Workspace

    if not (arguments.dataset and arguments.encoder):
        raise SystemExit("--home needs --dataset and --encoder")
    store = Store(Workspace.at(arguments.home).embeddings_uri)
    names = processing.group(arguments.group)
    train = store.split_vectors(arguments.dataset, arguments.encoder, "train", names)
    val = store.split_vectors(arguments.dataset, arguments.encoder, "val", names)
    return train, val, names


def sklearn_fit(train: SplitVectors, val: SplitVectors, names: tuple[str, ...]) -> tuple[float, float]:
    """(fit seconds, test accuracy %) of LogisticRegression on seed 0's draw, the probe's test set."""
    from sklearn.linear_model import LogisticRegression

    assigned = class_assignment(0, train.image_ids, len(names))
    stacked = np.stack([normalise(train.vectors[name]) for name in names])
    features = stacked[assigned, np.arange(len(assigned))]
    test = np.concatenate([normalise(val.vectors[name]) for name in names])
    test_labels = np.repeat(np.arange(len(names)), len(val.image_ids))
    started = time.perf_counter()
    model = LogisticRegression(max_iter=1000).fit(features, assigned)
    seconds = time.perf_counter() - started
    return seconds, float(100.0 * np.mean(model.predict(test) == test_labels))


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    train, val, names = stored(arguments) if arguments.home else synthetic(arguments)
    dim = next(iter(train.vectors.values())).shape[1]
    source = f"{arguments.dataset} x {arguments.encoder}, group {arguments.group}" if arguments.home else "synthetic"
    print(f"data: {source}; {len(train.image_ids)} train x {len(val.image_ids)} val images, {dim}-d, K = {len(names)}")

    settings = ProbeSettings(trials=arguments.trials, epochs=arguments.epochs)
    stamps: list[float] = []
    started = time.perf_counter()
    outcome = processing_probe(
        train, val, names, seeds=range(arguments.seeds), settings=settings, on_trial=lambda _: stamps.append(time.perf_counter())
    )
    finished = time.perf_counter()
    search_s, final_s = stamps[-1] - started, finished - stamps[-1]
    spread = f" ± {outcome.acc1.std():.2f} over {arguments.seeds} seeds" if arguments.seeds > 1 else " (seed 0)"
    print(f"bench probe: search {search_s:.1f} s ({settings.trials} trials x {settings.epochs} epochs, "
          f"{search_s / settings.trials:.2f} s per trial; best lr {outcome.search.best.lr:.3g}, wd {outcome.search.best.wd:.3g}, "
          f"held-out {outcome.search.best.val_acc1:.2f}%), final fit {final_s:.1f} s; "
          f"test accuracy {outcome.acc1.mean():.2f}%{spread}")

    sklearn_s, sklearn_acc = sklearn_fit(train, val, names)
    print(f"sklearn LogisticRegression (lbfgs, C=1): fit {sklearn_s:.1f} s; test accuracy {sklearn_acc:.2f}% (seed 0)")
    print(f"chance {100 / len(names):.2f}%; search time / sklearn fit time = {search_s / sklearn_s:.1f}x; "
          f"accuracy bench - sklearn = {outcome.acc1[0] - sklearn_acc:+.2f} points (seed 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
