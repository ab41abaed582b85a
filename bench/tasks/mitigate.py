"""mitigate (docs/protocol.md#mitigate): remove the processing trace from the embeddings and
measure what removing it costs.

The processing subspace is learned from the train split alone (`erasure`), projected out of the
train and val vectors in memory (the stored tables are never rewritten), and knn-influence and
the processing probe run again on the projected vectors. Before and after are paired: the same
val images, so their differences get intervals of their own.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import bootstrap, knn, plots, processing, results, versioned_index
from bench.encoders.spec import EncoderSpec
from bench.store import SplitVectors, Store
from bench.tasks import erasure, knn_influence, probe_processing, probes
from bench.tasks.cells import Computed, run_cells
from bench.tasks.linear_probe import ProbeSettings
from bench.tasks.options import BACKEND, BOOTSTRAP, GROUP, SEEDS, K, knn_dataset, resampling
from bench.tasks.request import RunRequest
from bench.tasks.spec import Column, TaskSpec

NAME = "mitigate"
STAGES = ("before", "after")
MEASURES = (  # (name in the cell, what it is)
    ("gap_pos_minus_neg", "knn-influence pos-same − neg-same"),
    ("probe_acc1", "processing probe accuracy"),
    ("all_same", "semantic kNN accuracy, all-same"),
)


def measure(train: SplitVectors, val: SplitVectors, classes: tuple[str, ...], *, k: int, seeds: range, backend: str,
            settings: ProbeSettings, device: Any) -> dict[str, np.ndarray]:
    """Each measure per val image (%): means over val images are the reported numbers."""
    outcome = knn_influence.run(train, val, classes, k=k, seeds=seeds, backend=backend)
    per_query = outcome.per_query()
    probe = probe_processing.processing_probe(train, val, classes, seeds=seeds, settings=settings, device=device)
    return {
        "gap_pos_minus_neg": per_query["pos_same"] - per_query["neg_same"],
        "probe_acc1": probe.per_image(len(val.image_ids)),
        "all_same": per_query["all_same"],
    }


def summary(before: dict[str, np.ndarray], after: dict[str, np.ndarray], resampled: bootstrap.Resampling) -> dict[str, Any]:
    """Before, after and after − before of every measure, with intervals from the same resamples of val images."""
    per_image = {f"{stage}.{name}": values for stage, found in zip(STAGES, (before, after)) for name, values in found.items()}
    per_image |= {f"change.{name}": after[name] - before[name] for name in before}
    metrics: dict[str, Any] = {stage: {} for stage in (*STAGES, "change")}
    for path, values in per_image.items():
        stage, name = path.split(".")
        metrics[stage][name] = float(np.mean(values))
    gap = metrics["before"]["gap_pos_minus_neg"]
    metrics["gap_removed"] = 100.0 * (1.0 - metrics["after"]["gap_pos_minus_neg"] / gap) if gap > 0 else float("nan")
    metrics[results.INTERVALS] = bootstrap.mean_intervals(per_image, resampled)
    return metrics


def execute(request: RunRequest) -> list[Path]:
    group, seed_count, backend = request.value(GROUP), request.value(SEEDS), request.value(BACKEND)
    classes = processing.group(group)
    settings = probes.settings_of(request)
    resampled = resampling(request, "val image")
    dataset, k = knn_dataset(request, NAME)

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        train = store.split_vectors(key, spec.name, "train", classes)
        val = store.split_vectors(key, spec.name, "val", classes)
        device = probes.probe_device(request)
        began = time.perf_counter()
        found = erasure.learn(train, classes, device=device)
        learn_seconds = time.perf_counter() - began
        request.console.print(f"{spec.name}: {found.directions} processing directions removed in {len(found.rounds) - 1} rounds; "
                              f"held-out probe {found.rounds[0].held_out_acc1:.1f}% → {found.rounds[-1].held_out_acc1:.1f}% "
                              f"(chance {found.chance:.1f}%)")
        options = dict(k=k, seeds=range(seed_count), backend=backend, settings=settings, device=device)
        before = measure(train, val, classes, **options)
        train, val = found.apply(train), found.apply(val)  # the originals are not needed again: their memory goes
        after = measure(train, val, classes, **options)
        metrics = summary(before, after, resampled)
        metrics |= {"directions": found.directions, "chance": found.chance,
                    "semantic_chance": 100.0 / knn.class_count(train, val)}
        return Computed(
            metric="after.gap_pos_minus_neg",
            metrics=metrics,
            detail={
                "classes": list(classes),
                "rounds": [asdict(step) for step in found.rounds],
                "reached_chance": found.reached_chance,
                "train_images": int(len(train.image_ids)),
                "val_images": int(len(val.image_ids)),
            },
            provenance={
                "method": {"tolerance": found.tolerance, "max_rounds": erasure.MAX_ROUNDS, "check_rates": list(erasure.CHECK_RATES),
                           "check_settings": asdict(erasure.CHECK_SETTINGS), "held_out_share": erasure.HELD_OUT_SHARE},
                "learn_s": learn_seconds,
                "backend": versioned_index.describe(backend),
                "device": str(device),
                "settings": asdict(settings),
                "seeds": list(range(seed_count)),
            },
        )

    return run_cells(
        request, task=NAME,
        condition=results.condition(group=group, k=k, seeds=seed_count, **probes.settings_condition(settings)),
        processings=classes, splits=("train", "val"), compute=compute, dataset=dataset,
        resampling=resampled,
    )


def figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[plots.Figure]:
    """Before and after, per encoder: the kNN gap, the processing probe and the semantic accuracy, with intervals."""
    cells = results.ordered(task.primary, cells)
    chance = results.metric(cells[0], "chance") or 0.0  # one group per board: the same for every cell
    panels = [
        ("gap_pos_minus_neg", "kNN gap pos−neg (points)", 0.0),
        ("probe_acc1", "processing probe (%); line: chance", chance),
        ("all_same", "semantic kNN, all-same (%)", None),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(9.0, 1.3 + 0.6 * len(cells)), sharey=True)
    for ax, (name, label, reference) in zip(axes, panels):
        plots.interval_panel(ax, cells, [(f"{stage}.{name}", stage) for stage in STAGES], label, reference)
    plots.interval_legend(axes[-1], cells, list(STAGES))
    return [plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('mitigate', dataset, condition)}.png"),
                         f"Removing the processing trace on {dataset} ({condition}), per encoder, before (circles) and after (squares) "
                         "the learned processing subspace is projected out, with 95 % bootstrap intervals over val images. The gap "
                         "and the probe should fall to 0 and chance; the drop in semantic accuracy is the price.")]


TASK = TaskSpec(
    name=NAME,
    description="remove the processing trace (a linear subspace learned on train): kNN gap, probe, semantic accuracy before and after",
    execute=execute,
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
    rule=lambda cells: (
        "The processing subspace is learned per encoder from train embeddings only and projected out of train and val "
        "(vectors normalised again). before / after: gap = knn-influence pos-same − neg-same "
        f"({results.setting(cells, 'k')}-NN, {results.setting(cells, 'seeds')} seeds), probe = the processing probe's accuracy "
        f"(probe-processing's protocol: {results.setting(cells, 'trials')}-trial search, {results.setting(cells, 'epochs')} "
        "epochs), sem = semantic kNN accuracy (all-same), on the original and on the projected "
        "vectors; price = sem after − sem before; dims = directions removed; chance = the probe's. Intervals of the before "
        "values are in the cell and the report. "
        + bootstrap.rule("val image", cells, "0 (probe after: lies above chance)") + " Before and after share their resamples."
    ),
    options=(GROUP, K, SEEDS, BACKEND, probes.TRIALS, probes.EPOCHS, probes.SCHEDULE, BOOTSTRAP),
    figures=figures,
    decimals=1,  # nine columns, four with intervals: one decimal keeps the table within a terminal
)
