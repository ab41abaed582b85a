"""mitigate (docs/tasks/mitigate.md): remove one processing group's trace from the embeddings and
measure what is left of it, what is left of the traces of the groups the method never saw (its
transfer), and what removing it costs.

The method (bench.mitigation: projection, adversarial, normalise) is fitted on the train split's
vectors under the classes of ONE group (--group) alone, then applied in memory to train and val
under every processing of every group (the stored tables are never rewritten), and knn-influence
and the processing probe run on the original and on the transformed vectors of every group.
Before and after are paired: the same val images, so their differences get intervals of their own.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from bench import bootstrap, data, exact_search, knn, measures, mitigation, processing, results, versioned_search
from bench.arguments import non_negative_number
from bench.errors import UsageError
from bench.runtime import pick_device
from bench.tasks import erasure, knn_influence, probe_processing, probes
from bench.tasks.linear_probe import ProbeSettings
from bench.tasks.options import BACKEND, BOOTSTRAP, GROUP, PERMUTATIONS, SEARCH, SEEDS, K, inference, knn_k
from bench.tasks.spec import Column, Inputs, TaskOption, TaskSpec, Work
from bench.vectors import SplitVectors

NAME = "mitigate"
STAGES = ("before", "after")
GAP, PROBE, SEMANTIC = "gap_pos_minus_neg", "probe_acc1", "all_same"
SHORT = {"jpeg": "jpeg", "sharpening": "sharp", "resizing": "resize", "interpolation": "interp"}  # column headers

METHOD = TaskOption(
    "method",
    "how the trace is removed, fitted on --group's classes of the train split alone: projection (the linear subspace a probe "
    "finds, projected out), adversarial (a D x D linear map trained against a processing classifier), normalise (each "
    "processing class standardised by its own train mean and std: the query's class must be known) (default: projection)",
    default=mitigation.DEFAULT_METHOD,
)


PENALTY = TaskOption(
    "penalty",
    "λ of --method adversarial: the weight of the map's move, mean ||A z − z||² in each dimension's own spread, against the "
    "classifier's confusion; larger keeps the vectors closer and removes less, 0 leaves the move free "
    f"(default: {mitigation.AdversarialSettings().penalty:g})",
    parse=non_negative_number,
)


def group_metric(group: str, stage: str, name: str) -> str:
    """The name of a measure of any group, the fitted one included ("group.sharpening.after.probe_acc1")."""
    return f"group.{group}.{stage}.{name}"


@dataclass(frozen=True)
class MitigateSettings:
    knn: knn_influence.KnnSettings  # the gap and the semantic accuracy of the fitted group, before and after
    probe: ProbeSettings
    group: str = processing.DEFAULT_GROUP  # the group the method is fitted on
    method: str = mitigation.DEFAULT_METHOD
    adversarial: mitigation.AdversarialSettings = mitigation.AdversarialSettings()

    def knn_of(self, group: str) -> knn_influence.KnnSettings:
        """knn-influence's settings for any group: this run's k, seeds, search and inference."""
        return dataclasses.replace(self.knn, classes=processing.group(group))


@dataclass(frozen=True)
class Stage:
    """The measures of one stage of one group, per val image (%: their means are the reported
    numbers), and the processing probes' predictions (the probe's test permutes labels against them)."""

    per_image: dict[str, np.ndarray]
    predictions: np.ndarray


def measured(train: SplitVectors, val: SplitVectors, knn_settings: knn_influence.KnnSettings, probe: ProbeSettings, device: Any) -> Stage:
    """knn-influence and the processing probe of one group on one stage's vectors."""
    found = knn_influence.run(train, val, knn_settings.classes, k=knn_settings.k, seeds=knn_settings.seeds, search=knn_settings.search,
                              backend=knn_settings.backend)
    per_query = found.per_query()
    probed = probe_processing.processing_probe(train, val, knn_settings.classes, seeds=knn_settings.seeds, settings=probe, device=device)
    assert probed.predictions is not None
    return Stage({GAP: per_query["pos_same"] - per_query["neg_same"], PROBE: probed.per_image(len(val.image_ids)),
                  SEMANTIC: per_query["all_same"]}, probed.predictions)


@dataclass(frozen=True)
class Mitigation:
    """Each measure of every group per val image before and after the method is applied."""

    groups: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]  # group -> (before, after) per val image
    fitted: mitigation.Mitigator
    settings: MitigateSettings
    semantic_classes: int
    images: tuple[int, int]  # (train, val)
    learn_seconds: float
    device: str
    units: tuple[str, ...] | None = None  # each val image's unit
    effects: dict[str, measures.Effect] = field(default_factory=dict)  # tests of the trace, per group and stage (group.*.*.*, after.*)

    @property
    def before(self) -> dict[str, np.ndarray]:
        return self.groups[self.settings.group][0]

    @property
    def after(self) -> dict[str, np.ndarray]:
        return self.groups[self.settings.group][1]

    def per_image(self) -> dict[str, np.ndarray]:
        found = {f"{stage}.{name}": values for stage, measured_ in zip(STAGES, (self.before, self.after)) for name, values in measured_.items()}
        found |= {f"change.{name}": self.after[name] - self.before[name] for name in self.before}
        for group, stages in self.groups.items():
            found |= {group_metric(group, stage, name): values[name] for stage, values in zip(STAGES, stages) for name in (GAP, PROBE)}
        return found

    def metrics(self) -> dict[str, float]:
        metrics = {name: float(np.mean(values)) for name, values in self.per_image().items()}
        gap = metrics["before.gap_pos_minus_neg"]
        metrics["gap_removed"] = 100.0 * (1.0 - metrics["after.gap_pos_minus_neg"] / gap) if gap > 0 else float("nan")
        metrics |= {f"group.{group}.chance": 100.0 / len(processing.group(group)) for group in self.groups}
        if isinstance(self.fitted, mitigation.Projection):
            metrics["directions"] = float(self.fitted.erased.directions)
        return metrics | {"chance": 100.0 / len(self.settings.knn.classes), "semantic_chance": 100.0 / self.semantic_classes}

    def resample(self, resampling: bootstrap.Resampling) -> bootstrap.Resampled:
        """Before, after and their change, from the same resamples of val units (every group's gaps:
        of train and val units together), and the tests of the trace on every group, before and
        after. The price (the change of semantic accuracy) has an interval, no test: a change is
        no trace."""
        per_image = self.per_image()
        points = {name: float(np.mean(values)) for name, values in per_image.items()}
        samples = measures.unit_means(per_image, self.units, resampling) if resampling.enabled else {}
        samples.update({name: effect.samples for name, effect in self.effects.items() if effect.samples is not None})
        return bootstrap.Resampled(samples, points, len(self.units or ()), {name: effect.test for name, effect in self.effects.items()})

    def detail(self) -> dict[str, Any]:
        return {"method": self.settings.method, "fitted_on": self.settings.group, "classes": list(self.settings.knn.classes),
                "groups": {group: list(processing.group(group)) for group in self.groups}, "fit": self.fitted.record(),
                "needs_class_at_test": self.fitted.needs_class_at_test, "train_images": self.images[0], "val_images": self.images[1]}

    def provenance(self) -> dict[str, Any]:
        method: dict[str, Any] = {"name": self.settings.method}
        if isinstance(self.fitted, mitigation.Projection):
            found = self.fitted.erased
            method |= {"tolerance": found.tolerance, "max_rounds": erasure.MAX_ROUNDS, "check_rates": list(erasure.CHECK_RATES),
                       "check_settings": dataclasses.asdict(erasure.CHECK_SETTINGS), "held_out_share": erasure.HELD_OUT_SHARE}
        elif isinstance(self.fitted, mitigation.LinearMap):
            method |= dataclasses.asdict(self.fitted.settings)
        return {"method": method, "learn_s": self.learn_seconds,
                "backend": versioned_search.describe(self.settings.knn.search, self.settings.knn.backend), "device": self.device,
                "settings": dataclasses.asdict(self.settings.probe), "seeds": list(self.settings.knn.seeds)}

    def picks(self) -> None:
        return None


def processings_read() -> tuple[str, ...]:
    """Every class of every group, once: the transfer is measured on all of them."""
    return tuple(dict.fromkeys(name for group in processing.GROUPS for name in processing.GROUPS[group]))


def work(options: Mapping[str, Any], dataset: data.ResolvedDataset) -> Work:
    group, seed_count = options[GROUP.name], options[SEEDS.name]
    method = mitigation.parse_method(options[METHOD.name])  # an unknown name ends here, before any extraction
    k = knn_k(NAME, options, dataset)
    probe = probes.settings_of(options)
    classes = processing.group(group)
    knn_settings = knn_influence.KnnSettings(classes, k, tuple(range(seed_count)), options[SEARCH.name],
                                             exact_search.resolve_backend(options[BACKEND.name]), inference(options, dataset))
    adversarial = adversarial_settings(method, options.get(PENALTY.name))
    settings = MitigateSettings(knn_settings, probe, group, method, adversarial)
    # projection's cells keep the condition they had before there were other methods, and a
    # default adversarial map the condition it had before its strength could be chosen
    named: dict[str, Any] = {} if method == mitigation.DEFAULT_METHOD else {"method": method}
    if adversarial != mitigation.AdversarialSettings():
        named["penalty"] = f"{adversarial.penalty:g}"
    condition = results.condition(group=group, k=k, seeds=seed_count, **named, **probes.settings_condition(probe))
    return Work(condition, processings_read(), ("train", "val"), settings, unit=dataset.unit_name)


def adversarial_settings(method: str, penalty: float | None) -> mitigation.AdversarialSettings:
    """The adversarial map's settings with --penalty applied; --penalty with another method is refused."""
    if penalty is None:
        return mitigation.AdversarialSettings()
    if method != mitigation.ADVERSARIAL:
        raise UsageError(f"--penalty weighs the adversarial map's move: it applies to --method adversarial only, not to --method {method}; "
                         "drop --penalty or add --method adversarial")
    return dataclasses.replace(mitigation.AdversarialSettings(), penalty=float(penalty))


def summary(fitted: mitigation.Mitigator, settings: MitigateSettings) -> str:
    """One line on what fitting found, for the progress channel."""
    if isinstance(fitted, mitigation.Projection):
        found = fitted.erased
        return (f"{found.directions} processing directions removed in {len(found.rounds) - 1} rounds; held-out probe "
                f"{found.rounds[0].held_out_acc1:.1f}% → {found.rounds[-1].held_out_acc1:.1f}% (chance {found.chance:.1f}%)"
                + ("" if found.reached_chance else "; the round limit stopped it before chance"))
    if isinstance(fitted, mitigation.LinearMap):
        return (f"linear map trained in {fitted.settings.steps} steps; the classifier on its batch {fitted.critic_acc1[0]:.1f}% → "
                f"{fitted.critic_acc1[-1]:.1f}% (chance {100.0 / len(settings.knn.classes):.1f}%), mean ||W f + b − f||² {fitted.moved:.2g} (unit f)")
    return f"per-class statistics of {len(settings.knn.classes)} classes"


def measure(inputs: Inputs[MitigateSettings]) -> Mitigation:
    settings = inputs.settings
    train, val = inputs.vectors["train"], inputs.vectors["val"]
    device = pick_device(inputs.device)  # --device (auto: CUDA when present)
    began = time.perf_counter()
    fitted = mitigation.fit(settings.method, train, settings.knn.classes, device=device, adversarial=settings.adversarial)
    learn_seconds = time.perf_counter() - began
    inputs.progress.note(f"{inputs.encoder.name}: {settings.method} on {settings.group}: {summary(fitted, settings)}")
    changed_train, changed_val = fitted.apply(train), fitted.apply(val)  # in memory: the store is never rewritten
    resampling = settings.knn.inference
    units = inputs.dataset.units(val.image_ids)
    groups: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    effects: dict[str, measures.Effect] = {}
    for group in [settings.group, *(name for name in processing.GROUPS if name != settings.group)]:  # the fitted group first
        knn_settings = settings.knn_of(group)
        before = measured(train, val, knn_settings, settings.probe, device)
        after = measured(changed_train, changed_val, knn_settings, settings.probe, device)
        groups[group] = (before.per_image, after.per_image)
        if resampling is not None:  # before too: the report draws each point as tested (the board marks the after columns)
            for stage, (stage_train, stage_val), found in (("before", (train, val), before), ("after", (changed_train, changed_val), after)):
                gap = knn_influence.gap_effect(stage_train, stage_val, inputs.dataset, knn_settings)
                assert gap is not None
                effects[group_metric(group, stage, GAP)] = gap
                effects[group_metric(group, stage, PROBE)] = measures.processing_probe_accuracy(
                    found.predictions, len(knn_settings.classes), units=units, permutations=resampling.permutations,
                    resampling=bootstrap.Resampling(0))
    if resampling is not None:  # the fitted group's trace left, under the names its board has always had
        effects |= {f"after.{name}": effects[group_metric(settings.group, "after", name)] for name in (GAP, PROBE)}
    return Mitigation(groups, fitted, settings, knn.class_count(train, val), (len(train.image_ids), len(val.image_ids)), learn_seconds,
                      str(device), tuple(units), effects)


def _group_columns(group: str) -> tuple[Column, Column]:
    return (Column(f"{SHORT[group]} gap", group_metric(group, "after", GAP), interval=True),
            Column(f"{SHORT[group]} probe", group_metric(group, "after", PROBE), interval=True, baseline=f"group.{group}.chance", above=True))


TASK = TaskSpec(
    name=NAME,
    description="remove one group's processing trace (projection, adversarial map or per-class normalisation, fitted on train): "
                "kNN gap and probe of every group after, semantic price",
    work=work,
    measure=measure,
    columns=(
        Column("gap before", "before.gap_pos_minus_neg"),
        Column("probe before", "before.probe_acc1"),
        Column("sem before", "before.all_same"),
        Column("price", "change.all_same", interval=True),
        *(column for group in processing.GROUPS for column in _group_columns(group)),
    ),
    options=(METHOD, PENALTY, GROUP, K, SEEDS, SEARCH, BACKEND, probes.TRIALS, probes.EPOCHS, probes.SCHEDULE, BOOTSTRAP, PERMUTATIONS),
    decimals=1,  # twelve columns, nine with intervals: one decimal keeps them readable
    view="bench.report.mitigate",
    version=3,  # 3: the adversarial map trained in standardised units by plain gradient steps, every group tested before too;
    # 2: every group's gap and probe after the method (transfer); 1 held the trained group's only
)
