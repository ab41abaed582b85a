"""mitigate (docs/protocol.md#mitigate): remove the processing trace from the embeddings and
measure what removing it costs.

The processing subspace is learned from the train split alone (`erasure`), projected out of the
train and val vectors in memory (the stored tables are never rewritten), and knn-influence and
the processing probe run again on the projected vectors. Before and after are paired: the same
val images, so their differences get intervals of their own.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from bench import bootstrap, data, exact_search, knn, measures, processing, results, versioned_search
from bench.runtime import pick_device
from bench.tasks import erasure, knn_influence, probe_processing, probes
from bench.tasks.linear_probe import ProbeSettings
from bench.tasks.options import BACKEND, BOOTSTRAP, GROUP, PERMUTATIONS, SEARCH, SEEDS, K, inference, knn_k
from bench.tasks.spec import Column, Inputs, TaskSpec, Work
from bench.vectors import SplitVectors

NAME = "mitigate"
STAGES = ("before", "after")


@dataclass(frozen=True)
class Settings:
    knn: knn_influence.Settings  # the gap and the semantic accuracy, before and after
    probe: ProbeSettings


@dataclass(frozen=True)
class Stage:
    """The measures of one stage, per val image (%: their means are the reported numbers), and the
    processing probes' predictions (the probe's test permutes labels against them)."""

    per_image: dict[str, np.ndarray]
    predictions: np.ndarray


def measured(train: SplitVectors, val: SplitVectors, settings: Settings, device: Any) -> Stage:
    """knn-influence and the processing probe on one stage's vectors."""
    knn = settings.knn
    outcome = knn_influence.run(train, val, knn.classes, k=knn.k, seeds=knn.seeds, search=knn.search, backend=knn.backend)
    per_query = outcome.per_query()
    probe = probe_processing.processing_probe(train, val, knn.classes, seeds=knn.seeds, settings=settings.probe, device=device)
    assert probe.predictions is not None
    return Stage({
        "gap_pos_minus_neg": per_query["pos_same"] - per_query["neg_same"],
        "probe_acc1": probe.per_image(len(val.image_ids)),
        "all_same": per_query["all_same"],
    }, probe.predictions)


@dataclass(frozen=True)
class Mitigation:
    """Each measure per val image before and after the learned subspace is projected out."""

    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    erased: erasure.Erasure
    settings: Settings
    semantic_classes: int
    images: tuple[int, int]  # (train, val)
    learn_seconds: float
    device: str
    units: tuple[str, ...] | None = None  # each val image's unit
    effects: dict[str, measures.Effect] = field(default_factory=dict)  # after.gap_pos_minus_neg, after.probe_acc1: tests of the trace left

    def per_image(self) -> dict[str, np.ndarray]:
        found = {f"{stage}.{name}": values for stage, measured in zip(STAGES, (self.before, self.after)) for name, values in measured.items()}
        return found | {f"change.{name}": self.after[name] - self.before[name] for name in self.before}

    def metrics(self) -> dict[str, float]:
        metrics = {name: float(np.mean(values)) for name, values in self.per_image().items()}
        gap = metrics["before.gap_pos_minus_neg"]
        metrics["gap_removed"] = 100.0 * (1.0 - metrics["after.gap_pos_minus_neg"] / gap) if gap > 0 else float("nan")
        return metrics | {"directions": float(self.erased.directions), "chance": self.erased.chance,
                          "semantic_chance": 100.0 / self.semantic_classes}

    def resample(self, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
        """Before, after and their change, from the same resamples of val units (the gap after: of
        train and val units together), and the tests of the trace left after the projection. The
        price (the change of semantic accuracy) has an interval, no test: a change is no trace."""
        per_image = self.per_image()
        points = {name: float(np.mean(values)) for name, values in per_image.items()}
        samples = measures.unit_means(per_image, self.units, resampling) if resampling.enabled else {}
        samples.update({name: effect.samples for name, effect in self.effects.items() if effect.samples is not None})
        return bootstrap.Resampled(samples, points, len(self.units or ()), {name: effect.test for name, effect in self.effects.items()})

    def detail(self) -> dict[str, Any]:
        return {"classes": list(self.settings.knn.classes), "rounds": [asdict(step) for step in self.erased.rounds],
                "reached_chance": self.erased.reached_chance, "train_images": self.images[0], "val_images": self.images[1]}

    def provenance(self) -> dict[str, Any]:
        found = self.erased
        return {
            "method": {"tolerance": found.tolerance, "max_rounds": erasure.MAX_ROUNDS, "check_rates": list(erasure.CHECK_RATES),
                       "check_settings": asdict(erasure.CHECK_SETTINGS), "held_out_share": erasure.HELD_OUT_SHARE},
            "learn_s": self.learn_seconds,
            "backend": versioned_search.describe(self.settings.knn.search, self.settings.knn.backend),
            "device": self.device,
            "settings": asdict(self.settings.probe),
            "seeds": list(self.settings.knn.seeds),
        }

    def picks(self) -> None:
        return None


def plan(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    group, seed_count = options[GROUP.name], options[SEEDS.name]
    k = knn_k(NAME, options, dataset)
    probe = probes.settings_of(options)
    classes = processing.group(group)
    knn = knn_influence.Settings(classes, k, tuple(range(seed_count)), options[SEARCH.name], exact_search.resolve_backend(options[BACKEND.name]),
                                 inference(options, dataset))
    settings = Settings(knn, probe)
    condition = results.condition(group=group, k=k, seeds=seed_count, **probes.settings_condition(probe))
    return Work(condition, classes, ("train", "val"), settings, unit=dataset.unit_name)


def measure(inputs: Inputs) -> Mitigation:
    settings: Settings = inputs.settings
    train, val = inputs.vectors["train"], inputs.vectors["val"]
    device = pick_device(inputs.device)  # --device (auto: CUDA when present)
    began = time.perf_counter()
    found = erasure.learn(train, settings.knn.classes, device=device)
    learn_seconds = time.perf_counter() - began
    if inputs.console is not None:
        inputs.console.print(f"{inputs.encoder.name}: {found.directions} processing directions removed in {len(found.rounds) - 1} rounds; "
                             f"held-out probe {found.rounds[0].held_out_acc1:.1f}% → {found.rounds[-1].held_out_acc1:.1f}% "
                             f"(chance {found.chance:.1f}%)")
    before = measured(train, val, settings, device)
    train, val = found.apply(train), found.apply(val)  # the originals are not needed again: their memory goes
    after = measured(train, val, settings, device)
    effects = {}
    resampling = settings.knn.inference
    if resampling is not None:
        gap = knn_influence.gap_effect(train, val, inputs.dataset, settings.knn)
        assert gap is not None
        effects["after.gap_pos_minus_neg"] = gap
        effects["after.probe_acc1"] = measures.processing_probe_accuracy(
            after.predictions, len(settings.knn.classes), units=inputs.dataset.units(val.image_ids), permutations=resampling.permutations,
            resampling=bootstrap.Resampling(0))
    return Mitigation(before.per_image, after.per_image, found, settings, knn.class_count(train, val),
                      (len(train.image_ids), len(val.image_ids)), learn_seconds, str(device), tuple(inputs.dataset.units(val.image_ids)), effects)


TASK = TaskSpec(
    name=NAME,
    description="remove the processing trace (a linear subspace learned on train): kNN gap, probe, semantic accuracy before and after",
    plan=plan,
    measure=measure,
    columns=(
        Column("gap before", "before.gap_pos_minus_neg"),
        Column("gap after", "after.gap_pos_minus_neg", interval=True),
        Column("probe before", "before.probe_acc1"),
        Column("probe after", "after.probe_acc1", interval=True, baseline="chance", above=True),
        Column("sem before", "before.all_same"),
        Column("sem after", "after.all_same"),
        Column("price", "change.all_same", interval=True),
        Column("dims", "directions", decimals=0),
        Column("chance", "chance"),
    ),
    options=(GROUP, K, SEEDS, SEARCH, BACKEND, probes.TRIALS, probes.EPOCHS, probes.SCHEDULE, BOOTSTRAP, PERMUTATIONS),
    decimals=1,  # nine columns, four with intervals: one decimal keeps the table within a terminal
    view="bench.report.mitigate",
)
