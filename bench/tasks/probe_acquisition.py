"""probe-acquisition (docs/protocol.md#probe-acquisition): can one linear layer on
frozen embeddings tell which camera took a photo, once the scene is masked away?

Labels come from Exif (make, model, ISO, ...); images are masked after the encoder's crop (95 %
by default). The search (seed 42) trains on train and scores val; the best setting retrains on
train + val and is tested once on test.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from bench import bootstrap, data, processing, results
from bench.arguments import masking_op
from bench.encoders.spec import EncoderSpec
from bench.knn import class_count
from bench.store import SplitVectors, Store
from bench.tasks import probes
from bench.tasks.cells import Computed, run_cells
from bench.tasks.linear_probe import (
    ProbeSettings,
    Trial,
    predict,
    scores,
    search,
    single_version,
    train,
)
from bench.tasks.options import BOOTSTRAP, resampling
from bench.tasks.request import RunRequest
from bench.tasks.spec import Column, TaskOption, TaskSpec, Trace
from bench.vectors import normalise

if TYPE_CHECKING:  # torch loads only when a probe trains
    import torch

NAME = "probe-acquisition"
SEED = 42  # the seed the paper's acquisition script passes
SPLITS = ("train", "val", "test")
MASK = TaskOption(
    "mask", "masked share of each crop: 0.95 (default, the paper's), 0.9, 0.75, 0.5, 0.25, 0, or none for the unmasked files",
    default="mask95", parse=masking_op,
)


def acquisition_probe(
    train_split: SplitVectors,
    val_split: SplitVectors,
    test_split: SplitVectors,
    version: str,
    *,
    settings: ProbeSettings = ProbeSettings(),
    device: "torch.device | str" = "cpu",
    seed: int = SEED,
    on_trial: Callable[[Trial], None] | None = None,
) -> probes.ProbeOutcome:
    """The acquisition probe of §6.2 on the embeddings under processing `version` (e.g. mask95)."""
    import torch

    device = torch.device(device)
    splits = (train_split, val_split, test_split)
    count = class_count(*splits)
    features = [normalise(split.vectors[version]) for split in splits]
    found = search(
        single_version(features[0], train_split.labels, device), probes.tensor(features[1], device),
        probes.tensor(val_split.labels, device), count, settings, seed, on_trial,
    )
    combined = single_version(np.concatenate(features[:2]), np.concatenate([train_split.labels, val_split.labels]), device)
    trained = train(combined, count, [found.best.lr], [found.best.wd], [probes.final_seed(seed)], settings)
    test_labels = probes.tensor(test_split.labels, device)
    predicted = predict(trained, probes.tensor(features[2], device))
    measured = scores(predicted, test_labels)
    return probes.ProbeOutcome(
        found, measured.acc1, measured.mean_class_acc, trained.diverged, count, combined.members.numel(), len(test_split.labels),
        (len(train_split.labels), len(val_split.labels)), (predicted == test_labels[None, :]).cpu().numpy(),
    )


def class_mean_resampled(hits: np.ndarray, labels: np.ndarray, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
    """The mean per-class accuracy in every resample of test images, drawn within each class
    (every class keeps its count, so every resample averages over the same classes)."""
    members = np.stack([labels == label for label in np.unique(labels)]).astype(np.float64)  # (C, n)
    points = {"probe_mean_class_acc": 100.0 * float(np.mean((members * hits).sum(axis=1) / members.sum(axis=1)))}
    if not resampling.enabled:
        return bootstrap.Resampled({}, points, len(labels))
    per_class = bootstrap.resampled_ratios(members * hits, members, resampling, strata=labels)
    return bootstrap.Resampled({"probe_mean_class_acc": 100.0 * per_class.mean(axis=1)}, points, len(labels))


def _check_splits(dataset: data.ResolvedDataset) -> dict[str, tuple[int, int]]:
    """Fail before any extraction when the dataset lacks a split or a second class; return
    (images, classes) per split."""
    counts = {split: (0, set()) for split in SPLITS}
    for record in dataset.listing.records:
        if record.split in counts:
            images, classes = counts[record.split]
            counts[record.split] = (images + 1, classes | {record.label})
    missing = [split for split, (images, _) in counts.items() if images == 0]
    if missing:
        raise probes.ProbeDataError(
            f"probe-acquisition needs train, val and test images; dataset {dataset.key} has none in {', '.join(missing)}. "
            "Use a dataset with Exif labels and three splits: cameras (--root your photos) or flickrexif."
        )
    single = [split for split, (_, classes) in counts.items() if len(classes) < 2 and split in ("train", "test")]
    if single:
        raise probes.ProbeDataError(
            f"probe-acquisition on {dataset.key}: {' and '.join(single)} hold(s) a single class, so accuracy would mean nothing. "
            "Use photos from at least two classes of the attribute (e.g. two camera makes, at least 3 photos each)."
        )
    return {split: (images, len(classes)) for split, (images, classes) in counts.items()}


def _show_splits(console, dataset: data.ResolvedDataset, counts: dict[str, tuple[int, int]]) -> None:
    from rich.table import Table

    grid = Table(title=f"{dataset.key}: images and classes per split", title_justify="left")
    for header in ("split", "images", "classes"):
        grid.add_column(header, justify="left" if header == "split" else "right")
    for split, (images, classes) in counts.items():
        grid.add_row(split, str(images), str(classes))
    console.print(grid)


def _label_names(store: Store, key: str, encoder: str, version: str) -> dict[int, str]:
    rows = store.scan(key, encoder, where=f"processing = '{version}'", columns=["label", "label_name"])
    return dict(zip(rows.column("label").to_pylist(), rows.column("label_name").to_pylist()))


def execute(request: RunRequest) -> list[Path]:
    version = request.value(MASK)
    settings = probes.settings_of(request)
    resampled = resampling(request, "test image")
    dataset = data.resolve(request.dataset, request.dataset_options)
    split_counts = _check_splits(dataset)
    _show_splits(request.console, dataset, split_counts)

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        splits = [store.split_vectors(key, spec.name, split, (version,)) for split in SPLITS]
        names = _label_names(store, key, spec.name, version)
        device = probes.probe_device(request)
        with probes.TrialProgress(request.console, spec.name, settings.trials) as progress:
            outcome = acquisition_probe(*splits, version, settings=settings, device=device, on_trial=progress.trial)
            progress.finished()
        test_labels = splits[2].labels
        counts = np.bincount(test_labels, minlength=outcome.classes)
        per_class = class_mean_resampled(outcome.hits[0], test_labels, resampled)
        return Computed(
            metric="probe_acc1",
            metrics={
                "probe_acc1": float(outcome.acc1[0]),
                "probe_mean_class_acc": float(outcome.mean_class_acc[0]),
                "chance": 100.0 / int(np.count_nonzero(counts)),  # uniform guessing over the classes the test holds
                "majority": float(100.0 * counts.max() / counts.sum()),
                "search": probes.search_record(outcome.search),
                results.INTERVALS: {**outcome.resampled(len(test_labels), "probe_acc1", resampled).intervals(), **per_class.intervals()},
                results.RESAMPLES: per_class.kept("probe_mean_class_acc"),
            },
            detail={
                "processing": version,
                "classes": [names.get(label, str(label)) for label in range(outcome.classes)],
                "test_counts": counts.tolist(),
                "splits": {split: {"images": images, "classes": classes} for split, (images, classes) in split_counts.items()},
                "trials": probes.trials_record(outcome.search),
                "train_rows": outcome.train_rows,
                "test_rows": outcome.test_rows,
                "search_rows": {"train": outcome.search_rows[0], "val": outcome.search_rows[1]},
                "diverged": bool(outcome.diverged[0]),
            },
            provenance={"device": str(device), "settings": asdict(settings), "seed": SEED},
        )

    return run_cells(
        request, task=NAME,
        condition=results.condition(processing=version, **probes.settings_condition(settings)),
        processings=(version,), splits=SPLITS, compute=compute, dataset=dataset,
        resampling=resampled,
    )


def rule(cells: list[dict[str, Any]]) -> str:
    """How the board's numbers were made, with its own mask, search and training settings."""
    version = results.setting(cells, "processing")
    seen = ("the files as they are (no mask)" if version == "original"
            else f"the masked images ({round(100 * float(processing.get(version).param('ratio')))} % of each crop black)")
    top1, per_class = bootstrap.rule("test image", cells, "the majority share (the best constant guess)", above=True), bootstrap.rule(
        "test image", cells, "chance", within="test class", above=True)
    return (f"probe_acc1 (%): one linear layer on L2-normalised embeddings of {seen}, lr and weight decay from a "
            f"{results.setting(cells, 'trials')}-trial TPE search ({results.setting(cells, 'epochs')} epochs per probe) trained on "
            "train and scored on val (search val), then retrained on train + val and tested once on test. mean class acc: per-class "
            "accuracy averaged over the test classes; chance = 1 / classes present in test; majority = the largest test class's "
            f"share. probe acc: {top1} mean class acc: {per_class}")


TASK = TaskSpec(
    name=NAME,
    description="linear probe: recover the camera attribute (make, model, ISO, ...) from masked images (paper §6.2-6.3)",
    execute=execute,
    columns=(
        Column("probe acc", "probe_acc1", interval=True, baseline="majority", above=True),
        Column("mean class acc", "probe_mean_class_acc", interval=True, baseline="chance", above=True),
        Column("chance", "chance"),
        Column("majority", "majority"),
        Column("search val", "search.val_acc1"),
    ),
    rule=rule,
    options=(probes.TRIALS, probes.EPOCHS, probes.SCHEDULE, MASK, BOOTSTRAP),
    figures=probes.figures,
    default_dataset="cameras",
    trace=Trace("mean class acc − chance", "probe_mean_class_acc", baseline="chance", above=True),
)
