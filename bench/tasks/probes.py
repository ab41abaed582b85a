"""Linear probes for processing and acquisition traces (PROTOCOL.md §6, the paper's Fig. 4 and
its acquisition figure): can one linear layer on frozen embeddings tell how an image was
processed, or which camera took it?

probe-processing (§6.1): every train image gets one processing class of the group drawn i.i.d.
uniformly and is represented by its embedding under that class. The search (seed 22) holds out
20 % of the train images, stratified by class; then, per seed, a fresh assignment trains on
every train image and is tested on every val image under every class. Mean ± std over seeds.

probe-acquisition (§6.2, §6.3): labels from Exif (make, model, ISO, ...), images masked after
the encoder's crop (95 % by default). The search (seed 42) trains on train and scores val; the
best setting retrains on train + val and is tested once on test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import data, processing, results
from bench.encoders.spec import EncoderSpec
from bench.seeding import stable_int, uniform_choice
from bench.store import SplitVectors, Store
from bench.tasks.cells import Computed, run_cells
from bench.tasks.knn_influence import class_count
from bench.tasks.linear_probe import (
    ProbeSettings,
    Search,
    Trial,
    TrainingRows,
    l2_normalised,
    predict,
    scores,
    search,
    single_version,
    train,
)
from bench.tasks.options import RunOptions

if TYPE_CHECKING:  # torch loads only when a probe trains
    import torch

PROCESSING_NAME = "probe-processing"
ACQUISITION_NAME = "probe-acquisition"
PROCESSING_SEARCH_SEED = 22  # the paper's default seed for the processing probe's search stage
ACQUISITION_SEED = 42  # the seed the paper's acquisition script passes
HOLDOUT_SHARE = 0.2
ASSIGNMENT_PURPOSE = "probe-processing-class"
HOLDOUT_PURPOSE = "probe-processing-holdout"
ACQUISITION_SPLITS = ("train", "val", "test")


class ProbeDataError(ValueError):
    """The dataset cannot be probed as asked (a split or a class is missing)."""


@dataclass(frozen=True)
class ProbeOutcome:
    """A probe's search and its final evaluation (one entry per final seed)."""

    search: Search
    acc1: np.ndarray  # (S,) test top-1 accuracy in %
    mean_class_acc: np.ndarray  # (S,) test mean per-class accuracy in %
    diverged: np.ndarray  # (S,) bool: the final run's loss went non-finite
    classes: int
    train_rows: int
    test_rows: int
    search_rows: tuple[int, int]  # (rows the search trains on, rows it scores on)


def class_assignment(seed: int, image_ids: np.ndarray, classes: int) -> np.ndarray:
    """Each train image's processing class, i.i.d. uniform, keyed by (seed, image_id)."""
    return uniform_choice(seed, image_ids, classes, ASSIGNMENT_PURPOSE)


def stratified_holdout(seed: int, image_ids: np.ndarray, labels: np.ndarray, share: float = HOLDOUT_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """(kept rows, held-out rows): within each label, rows ordered by a hash of (seed, image_id),
    the last round(share · n) held out."""
    kept: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rows = rows[np.argsort([stable_int(f"{seed}|{HOLDOUT_PURPOSE}|{image_ids[row]}") for row in rows], kind="stable")]
        cut = len(rows) - int(share * len(rows) + 0.5)
        kept.append(rows[:cut])
        held.append(rows[cut:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def final_seed(seed: int) -> int:
    """The training seed (initial weights, epoch orders) of the final run for label seed `seed`."""
    return stable_int(f"{seed}|probe-final")


def seed_rows(pool: "torch.Tensor", image_ids: np.ndarray, seeds: Sequence[int]) -> TrainingRows:
    """The final stage's training rows: every train image, under a fresh class draw per seed."""
    import torch

    assignments = _tensor(np.stack([class_assignment(seed, image_ids, pool.shape[0]) for seed in seeds]), pool.device)
    return TrainingRows(pool, torch.arange(len(image_ids), device=pool.device), assignments, assignments)


def _tensor(values: np.ndarray, device: "torch.device | str") -> "torch.Tensor":
    import torch

    return torch.as_tensor(np.ascontiguousarray(values), device=device)


def processing_probe(
    train_split: SplitVectors,
    val_split: SplitVectors,
    classes: Sequence[str],
    *,
    seeds: Sequence[int] = tuple(range(10)),
    settings: ProbeSettings = ProbeSettings(),
    device: "torch.device | str" = "cpu",
    search_seed: int = PROCESSING_SEARCH_SEED,
    on_trial: Callable[[Trial], None] | None = None,
) -> ProbeOutcome:
    """The processing probe of §6.1 for one group; train/val hold the same images under every class."""
    import torch

    device = torch.device(device)
    count = len(classes)
    ids = train_split.image_ids
    pool = _tensor(np.stack([l2_normalised(train_split.vectors[name]) for name in classes]), device)  # (K, N, D)

    assigned = class_assignment(search_seed, ids, count)
    kept, held = stratified_holdout(search_seed, ids, assigned)
    if len(kept) == 0 or len(held) == 0:
        raise ProbeDataError(f"probe-processing needs more train images to hold out {HOLDOUT_SHARE:.0%} for the search; it has {len(ids)}")
    fit = TrainingRows(pool, _tensor(kept, device), _tensor(assigned[kept], device)[None], _tensor(assigned[kept], device)[None])
    held_labels = _tensor(assigned[held], device)
    found = search(fit, pool[held_labels, _tensor(held, device)], held_labels, count, settings, search_seed, on_trial)

    trained = train(
        seed_rows(pool, ids, seeds), count, [found.best.lr] * len(seeds), [found.best.wd] * len(seeds), [final_seed(s) for s in seeds], settings
    )

    # every val image under every class: exactly balanced, K x |val| rows
    test_features = _tensor(np.concatenate([l2_normalised(val_split.vectors[name]) for name in classes]), device)
    test_labels = torch.arange(count, device=device).repeat_interleave(len(val_split.image_ids))
    measured = scores(predict(trained, test_features), test_labels)
    return ProbeOutcome(found, measured.acc1, measured.mean_class_acc, trained.diverged, count, len(ids), len(test_labels), (len(kept), len(held)))


def acquisition_probe(
    train_split: SplitVectors,
    val_split: SplitVectors,
    test_split: SplitVectors,
    version: str,
    *,
    settings: ProbeSettings = ProbeSettings(),
    device: "torch.device | str" = "cpu",
    seed: int = ACQUISITION_SEED,
    on_trial: Callable[[Trial], None] | None = None,
) -> ProbeOutcome:
    """The acquisition probe of §6.2 on the embeddings under processing `version` (e.g. mask95)."""
    import torch

    device = torch.device(device)
    splits = (train_split, val_split, test_split)
    count = class_count(*splits)
    features = [l2_normalised(split.vectors[version]) for split in splits]
    found = search(
        single_version(features[0], train_split.labels, device), _tensor(features[1], device),
        _tensor(val_split.labels, device), count, settings, seed, on_trial,
    )
    combined = single_version(np.concatenate(features[:2]), np.concatenate([train_split.labels, val_split.labels]), device)
    trained = train(combined, count, [found.best.lr], [found.best.wd], [final_seed(seed)], settings)
    measured = scores(predict(trained, _tensor(features[2], device)), _tensor(test_split.labels, device))
    return ProbeOutcome(
        found, measured.acc1, measured.mean_class_acc, trained.diverged, count, combined.members.numel(), len(test_split.labels),
        (len(train_split.labels), len(val_split.labels)),
    )


def settings_of(options: RunOptions) -> ProbeSettings:
    return ProbeSettings(epochs=options.epochs, trials=options.trials, schedule=options.schedule)


def _search_record(found: Search) -> dict[str, object]:
    return {"lr": found.best.lr, "wd": found.best.wd, "val_acc1": found.best.val_acc1, "trial": found.best.number, "seed": found.seed}


def _probe_device(options: RunOptions) -> "torch.device":
    from bench.extraction import pick_device

    return pick_device(options.device)


class _TrialProgress:
    """A progress bar over the search trials and the final training."""

    def __init__(self, console: Console, encoder: str, trials: int):
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("best val {task.fields[best]:.2f}%"), TimeElapsedColumn(), console=console)
        self.task = self.progress.add_task(f"probe {encoder}: search", total=trials + 1, best=0.0)
        self.best = float("-inf")

    def __enter__(self) -> "_TrialProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def trial(self, done: Trial) -> None:
        self.best = max(self.best, done.val_acc1)
        self.progress.update(self.task, advance=1, best=self.best)

    def finished(self) -> None:
        self.progress.update(self.task, advance=1, description=self.progress.tasks[0].description.replace("search", "done"))


def _trials(found: Search) -> list[dict[str, object]]:
    return [asdict(trial) for trial in found.trials]


def execute_processing(options: RunOptions, console: Console) -> list[Path]:
    classes = processing.group(options.group)
    settings = settings_of(options)
    seeds = list(range(options.seeds))

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        train_split = store.split_vectors(key, spec.name, "train", classes)
        val_split = store.split_vectors(key, spec.name, "val", classes)
        device = _probe_device(options)
        with _TrialProgress(console, spec.name, settings.trials) as progress:
            outcome = processing_probe(train_split, val_split, classes, seeds=seeds, settings=settings, device=device, on_trial=progress.trial)
            progress.finished()
        return Computed(
            metric="probe_acc1",
            metrics={
                "probe_acc1": {"mean": float(outcome.acc1.mean()), "std": float(outcome.acc1.std())},
                "chance": 100.0 / outcome.classes,
                "search": _search_record(outcome.search),
            },
            detail={
                "classes": list(classes),
                "seeds": [{"seed": seed, "probe_acc1": float(acc), "diverged": bool(bad)} for seed, acc, bad in zip(seeds, outcome.acc1, outcome.diverged)],
                "trials": _trials(outcome.search),
                "train_images": outcome.train_rows,
                "test_rows": outcome.test_rows,
                "search_rows": {"fit": outcome.search_rows[0], "held_out": outcome.search_rows[1]},
                "std": "population standard deviation over the seeds (ddof = 0)",
            },
            provenance={
                "device": str(device),
                "settings": asdict(settings),
                "assignment": f"uniform_choice(seed, image_id, {len(classes)}, {ASSIGNMENT_PURPOSE!r})",
                "search_holdout": f"per class, order by stable_int('{PROCESSING_SEARCH_SEED}|{HOLDOUT_PURPOSE}|<image_id>'), last {HOLDOUT_SHARE:.0%} held out",
            },
        )

    return run_cells(
        options, console, task=PROCESSING_NAME,
        condition=results.condition(group=options.group, seeds=options.seeds, **_settings_condition(settings)),
        processings=classes, splits=("train", "val"), compute=compute,
    )


def _settings_condition(settings: ProbeSettings) -> dict[str, object]:
    return {"trials": settings.trials, "epochs": settings.epochs, "schedule": settings.schedule}


def _check_splits(options: RunOptions) -> None:
    """Fail before any extraction when the dataset lacks a split the acquisition probe needs."""
    dataset = data.get(options.dataset)
    present = {record.split for record in dataset.records(options.dataset_options())}
    missing = [split for split in ACQUISITION_SPLITS if split not in present]
    if missing:
        raise ProbeDataError(
            f"probe-acquisition needs train, val and test images; dataset {options.dataset!r} has none in {', '.join(missing)}. "
            "Use a dataset with Exif labels and three splits: cameras (--root your photos) or flickrexif."
        )


def _label_names(store: Store, key: str, encoder: str, version: str) -> dict[int, str]:
    rows = store.scan(key, encoder, where=f"processing = '{version}'", columns=["label", "label_name"])
    return dict(zip(rows.column("label").to_pylist(), rows.column("label_name").to_pylist()))


def execute_acquisition(options: RunOptions, console: Console) -> list[Path]:
    version = options.mask
    settings = settings_of(options)
    _check_splits(options)

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        splits = [store.split_vectors(key, spec.name, split, (version,)) for split in ACQUISITION_SPLITS]
        names = _label_names(store, key, spec.name, version)
        device = _probe_device(options)
        with _TrialProgress(console, spec.name, settings.trials) as progress:
            outcome = acquisition_probe(*splits, version, settings=settings, device=device, on_trial=progress.trial)
            progress.finished()
        test_labels = splits[2].labels
        counts = np.bincount(test_labels, minlength=outcome.classes)
        return Computed(
            metric="probe_acc1",
            metrics={
                "probe_acc1": float(outcome.acc1[0]),
                "probe_mean_class_acc": float(outcome.mean_class_acc[0]),
                "chance": 100.0 / outcome.classes,
                "majority": float(100.0 * counts.max() / counts.sum()),
                "search": _search_record(outcome.search),
            },
            detail={
                "processing": version,
                "classes": [names.get(label, str(label)) for label in range(outcome.classes)],
                "test_counts": counts.tolist(),
                "trials": _trials(outcome.search),
                "train_rows": outcome.train_rows,
                "test_rows": outcome.test_rows,
                "search_rows": {"train": outcome.search_rows[0], "val": outcome.search_rows[1]},
                "diverged": bool(outcome.diverged[0]),
            },
            provenance={"device": str(device), "settings": asdict(settings), "seed": ACQUISITION_SEED},
        )

    return run_cells(
        options, console, task=ACQUISITION_NAME,
        condition=results.condition(processing=version, **_settings_condition(settings)),
        processings=(version,), splits=ACQUISITION_SPLITS, compute=compute,
    )
