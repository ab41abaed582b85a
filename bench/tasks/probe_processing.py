"""probe-processing (docs/protocol.md#probe-processing; the paper's Fig. 4): can one
linear layer on frozen embeddings tell how an image was processed?

Every train image gets one processing class of the group drawn i.i.d. uniformly and is
represented by its embedding under that class. The search (seed 22) holds out 20 % of the train
images, stratified by class; then, per seed, a fresh assignment trains on every train image and
is tested on every val image under every class. Mean ± std over seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from bench import bootstrap, data, measures, processing, results
from bench.runtime import pick_device
from bench.seeding import stable_int, uniform_choice
from bench.tasks import probes
from bench.tasks.linear_probe import (
    ProbeSettings,
    TrainingRows,
    Trial,
    predict,
    scores,
    search,
    train,
)
from bench.tasks.options import BOOTSTRAP, GROUP, PERMUTATIONS, SEEDS
from bench.tasks.spec import Column, Inputs, TaskSpec, Trace, Work
from bench.vectors import SplitVectors, normalise

if TYPE_CHECKING:  # torch loads only when a probe trains
    import torch

NAME = "probe-processing"
ACCURACY = "probe_acc1.mean"
SEARCH_SEED = 22  # the paper's default seed for the processing probe's search stage
HOLDOUT_SHARE = 0.2
ASSIGNMENT_PURPOSE = "probe-processing-class"
HOLDOUT_PURPOSE = "probe-processing-holdout"


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


def seed_rows(pool: "torch.Tensor", image_ids: np.ndarray, seeds: Sequence[int]) -> TrainingRows:
    """The final stage's training rows: every train image, under a fresh class draw per seed."""
    import torch

    assignments = probes.tensor(np.stack([class_assignment(seed, image_ids, pool.shape[0]) for seed in seeds]), pool.device)
    return TrainingRows(pool, torch.arange(len(image_ids), device=pool.device), assignments, assignments)


def processing_probe(
    train_split: SplitVectors,
    val_split: SplitVectors,
    classes: Sequence[str],
    *,
    seeds: Sequence[int] = tuple(range(10)),
    settings: ProbeSettings = ProbeSettings(),
    device: "torch.device | str" = "cpu",
    search_seed: int = SEARCH_SEED,
    on_trial: Callable[[Trial], None] | None = None,
) -> probes.ProbeOutcome:
    """The processing probe of §6.1 for one group; train/val hold the same images under every class."""
    import torch

    device = torch.device(device)
    count = len(classes)
    ids = train_split.image_ids
    pool = probes.tensor(np.stack([normalise(train_split.vectors[name]) for name in classes]), device)  # (K, N, D)

    assigned = class_assignment(search_seed, ids, count)
    kept, held = stratified_holdout(search_seed, ids, assigned)
    if len(kept) == 0 or len(held) == 0:
        raise probes.ProbeDataError(f"probe-processing needs more train images to hold out {HOLDOUT_SHARE:.0%} for the search; it has {len(ids)}")
    fit = TrainingRows(pool, probes.tensor(kept, device), probes.tensor(assigned[kept], device)[None], probes.tensor(assigned[kept], device)[None])
    held_labels = probes.tensor(assigned[held], device)
    found = search(fit, pool[held_labels, probes.tensor(held, device)], held_labels, count, settings, search_seed, on_trial)

    trained = train(
        seed_rows(pool, ids, seeds), count, [found.best.lr] * len(seeds), [found.best.wd] * len(seeds), [probes.final_seed(s) for s in seeds], settings
    )

    # every val image under every class: exactly balanced, K x |val| rows
    test_features = probes.tensor(np.concatenate([normalise(val_split.vectors[name]) for name in classes]), device)
    test_labels = torch.arange(count, device=device).repeat_interleave(len(val_split.image_ids))
    predicted = predict(trained, test_features)
    measured = scores(predicted, test_labels)
    return probes.ProbeOutcome(found, measured.acc1, measured.mean_class_acc, trained.diverged, count, len(ids), len(test_labels),
                               (len(kept), len(held)), (predicted == test_labels[None, :]).cpu().numpy(), predicted.cpu().numpy())


@dataclass(frozen=True)
class ProcessingProbeSettings:
    classes: tuple[str, ...]
    seeds: tuple[int, ...]
    probe: ProbeSettings


@dataclass(frozen=True)
class ProcessingProbe:
    """The probe of one group: the search, the final probes' verdicts on every val image under every class."""

    outcome: probes.ProbeOutcome
    settings: ProcessingProbeSettings
    val_images: int
    device: str
    units: tuple[str, ...] | None = None  # each val image's unit (None: the image itself)

    def metrics(self) -> dict[str, float]:
        return {"probe_acc1.mean": float(self.outcome.acc1.mean()), "probe_acc1.std": float(self.outcome.acc1.std()),
                "chance": 100.0 / self.outcome.classes, **probes.search_metrics(self.outcome.search)}

    def resample(self, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
        """The accuracy's interval (val units redrawn; the probes are fixed) and its test (version
        labels permuted within every val image against the probes' predictions)."""
        assert self.outcome.predictions is not None
        found = measures.processing_probe_accuracy(self.outcome.predictions, self.outcome.classes, units=self.units,
                                                   permutations=resampling.permutations, resampling=resampling)
        samples = {ACCURACY: found.samples} if found.samples is not None else {}
        return bootstrap.Resampled(samples, {ACCURACY: found.value}, self.val_images, {ACCURACY: found.test})

    def detail(self) -> dict[str, Any]:
        outcome, seeds = self.outcome, self.settings.seeds
        return {
            "classes": list(self.settings.classes),
            "seeds": [{"seed": seed, "probe_acc1": float(acc), "diverged": bool(bad)} for seed, acc, bad in zip(seeds, outcome.acc1, outcome.diverged)],
            "trials": probes.trials_record(outcome.search),
            "train_images": outcome.train_rows,
            "test_rows": outcome.test_rows,
            "search_rows": {"fit": outcome.search_rows[0], "held_out": outcome.search_rows[1]},
            "std": "population standard deviation over the seeds (ddof = 0)",
        }

    def provenance(self) -> dict[str, Any]:
        classes = self.settings.classes
        return {
            "device": self.device,
            "settings": asdict(self.settings.probe),
            "assignment": f"uniform_choice(seed, image_id, {len(classes)}, {ASSIGNMENT_PURPOSE!r})",
            "search_holdout": f"per class, order by stable_int('{SEARCH_SEED}|{HOLDOUT_PURPOSE}|<image_id>'), last {HOLDOUT_SHARE:.0%} held out",
        }

    def picks(self) -> None:
        return None


def work(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    group, seed_count = options[GROUP.name], options[SEEDS.name]
    settings = probes.settings_of(options)
    condition = results.condition(group=group, seeds=seed_count, **probes.settings_condition(settings))
    classes = processing.group(group)
    return Work(condition, classes, ("train", "val"), ProcessingProbeSettings(classes, tuple(range(seed_count)), settings), unit=dataset.unit_name)


def measure(inputs: Inputs) -> ProcessingProbe:
    settings: ProcessingProbeSettings = inputs.settings
    train_split, val_split = inputs.vectors["train"], inputs.vectors["val"]
    device = pick_device(inputs.device)  # --device (auto: CUDA when present)
    with probes.TrialProgress(inputs.progress, inputs.encoder.name, settings.probe.trials) as progress:
        outcome = processing_probe(train_split, val_split, settings.classes, seeds=settings.seeds, settings=settings.probe, device=device,
                                   on_trial=progress.trial)
        progress.finished()
    return ProcessingProbe(outcome, settings, len(val_split.image_ids), str(device), tuple(inputs.dataset.units(val_split.image_ids)))


TASK = TaskSpec(
    name=NAME,
    description="linear probe: recover each image's processing class from its embedding (paper §6.1, Fig. 4)",
    work=work,
    measure=measure,
    columns=(
        Column("probe acc", "probe_acc1.mean", interval=True, baseline="chance", above=True, follow_up="MP"),
        Column("± std", "probe_acc1.std"),
        Column("chance", "chance"),
        Column("search val", "search.val_acc1"),
    ),
    options=(GROUP, SEEDS, probes.TRIALS, probes.EPOCHS, probes.SCHEDULE, BOOTSTRAP, PERMUTATIONS),
    trace=Trace("probe − chance", "probe_acc1.mean", baseline="chance", above=True, words="accuracy − chance"),
    view="bench.report.probes:PROCESSING_VIEW",
)
