"""probe-acquisition (docs/protocol.md#probe-acquisition): can one linear layer on
frozen embeddings tell which camera took a photo, once the scene is masked away?

Labels come from Exif (make, model, ISO, ...); images are masked after the encoder's crop (95 %
by default). The search (seed 42) trains on train and scores val; the best setting retrains on
train + val and is tested once on test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
from bench import bootstrap, data, measures, results
from bench.arguments import masking_op
from bench.knn import class_count
from bench.runtime import pick_device
from bench.tables import Grid, Rows
from bench.tasks import probes
from bench.tasks.linear_probe import (
    ProbeSettings,
    Trial,
    predict,
    scores,
    search,
    single_version,
    train,
)
from bench.tasks.options import BOOTSTRAP, PERMUTATIONS
from bench.tasks.spec import Column, Inputs, TaskOption, TaskSpec, Trace, Work
from bench.vectors import SplitVectors, normalise

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
        (len(train_split.labels), len(val_split.labels)), (predicted == test_labels[None, :]).cpu().numpy(), predicted.cpu().numpy(),
    )


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


def split_table(dataset: data.ResolvedDataset) -> Grid:
    """Images per split and class: present, and of how many its split files name where the
    dataset lists what is missing (flickrexif)."""
    present = Counter((record.split, record.label_name) for record in dataset.listing.records)
    listed_missing = [reject for reject in dataset.listing.rejects if "split" in reject and "label_name" in reject]
    named = present + Counter((reject["split"], reject["label_name"]) for reject in listed_missing)
    classes = sorted({name for _, name in named})
    title = (f"{dataset.key}: photos present per split and class, of those its split files name" if listed_missing
             else f"{dataset.key}: images per split and class")
    def entry(split: str, name: str | None) -> str:
        keys = [(split, name)] if name is not None else [(split, c) for c in classes]
        here, of = sum(present.get(key, 0) for key in keys), sum(named.get(key, 0) for key in keys)
        return f"{here} / {of}" if listed_missing else str(here)

    rows = tuple((name, *(entry(split, name) for split in SPLITS)) for name in classes)
    total = ((f"all ({len(classes)} classes)", *(entry(split, None) for split in SPLITS)),)
    return Grid(title, ("class", *SPLITS), (Rows("", rows), Rows("", total)))


@dataclass(frozen=True)
class AcquisitionProbeSettings:
    version: str  # the processing op the images are embedded under (mask95 by default)
    probe: ProbeSettings
    splits: dict[str, tuple[int, int]]  # split -> (images, classes)


@dataclass(frozen=True)
class AcquisitionProbe:
    """The probe retrained on train + val and tested once on test, with its test labels."""

    outcome: probes.ProbeOutcome
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    settings: AcquisitionProbeSettings
    device: str
    units: tuple[str, ...] | None = None  # each test image's unit (None: the image itself)

    def _counts(self) -> np.ndarray:
        return np.bincount(self.test_labels, minlength=self.outcome.classes)

    def metrics(self) -> dict[str, float]:
        counts = self._counts()
        return {
            "probe_acc1": float(self.outcome.acc1[0]),
            "probe_mean_class_acc": float(self.outcome.mean_class_acc[0]),
            "chance": 100.0 / int(np.count_nonzero(counts)),  # uniform guessing over the classes the test holds
            "majority": float(100.0 * counts.max() / counts.sum()),
            **probes.search_metrics(self.outcome.search),
        }

    def resample(self, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
        """Both accuracies' intervals (test units redrawn within each class; the probe is fixed) and
        their tests (unit labels permuted against the probe's predictions)."""
        assert self.outcome.predictions is not None
        found = measures.label_probe_accuracy(self.outcome.predictions[0], self.test_labels, units=self.units,
                                              permutations=resampling.permutations, resampling=resampling)
        return bootstrap.Resampled({name: effect.samples for name, effect in found.items() if effect.samples is not None},
                                   {name: effect.value for name, effect in found.items()}, len(self.test_labels),
                                   {name: effect.test for name, effect in found.items()})

    def detail(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "processing": self.settings.version,
            "classes": list(self.class_names),
            "test_counts": self._counts().tolist(),
            "splits": {split: {"images": images, "classes": classes} for split, (images, classes) in self.settings.splits.items()},
            "trials": probes.trials_record(outcome.search),
            "train_rows": outcome.train_rows,
            "test_rows": outcome.test_rows,
            "search_rows": {"train": outcome.search_rows[0], "val": outcome.search_rows[1]},
            "diverged": bool(outcome.diverged[0]),
        }

    def provenance(self) -> dict[str, Any]:
        return {"device": self.device, "settings": asdict(self.settings.probe), "seed": SEED}

    def picks(self) -> None:
        return None


def work(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    version = options[MASK.name]
    settings = probes.settings_of(options)
    split_counts = _check_splits(dataset)
    condition = results.condition(processing=version, **probes.settings_condition(settings))
    return Work(condition, (version,), SPLITS, AcquisitionProbeSettings(version, settings, split_counts), unit=dataset.unit_name, notes=(split_table(dataset),))


def measure(inputs: Inputs) -> AcquisitionProbe:
    settings: AcquisitionProbeSettings = inputs.settings
    splits = [inputs.vectors[split] for split in SPLITS]
    names = {record.label: record.label_name for record in inputs.dataset.listing.records}
    device = pick_device(inputs.device)  # --device (auto: CUDA when present)
    with probes.TrialProgress(inputs.progress, inputs.encoder.name, settings.probe.trials) as progress:
        outcome = acquisition_probe(*splits, settings.version, settings=settings.probe, device=device, on_trial=progress.trial)
        progress.finished()
    return AcquisitionProbe(outcome, splits[2].labels, tuple(names.get(label, str(label)) for label in range(outcome.classes)),
                            settings, str(device), tuple(inputs.dataset.units(splits[2].image_ids)))


TASK = TaskSpec(
    name=NAME,
    description="linear probe: recover the camera attribute (make, model, ISO, ...) from masked images (paper §6.2-6.3)",
    work=work,
    measure=measure,
    columns=(
        Column("probe acc", "probe_acc1", interval=True, baseline="majority", above=True, follow_up="MP"),
        Column("mean class acc", "probe_mean_class_acc", interval=True, baseline="chance", above=True),
        Column("chance", "chance"),
        Column("majority", "majority"),
        Column("search val", "search.val_acc1"),
    ),
    options=(probes.TRIALS, probes.EPOCHS, probes.SCHEDULE, MASK, BOOTSTRAP, PERMUTATIONS),
    default_dataset="cameras",
    trace=Trace("mean class acc − chance", "probe_mean_class_acc", baseline="chance", above=True,
                words="mean per-class accuracy − chance (a probe that always names the largest class scores chance)"),
    view="bench.report.probes:ACQUISITION_VIEW",
)
