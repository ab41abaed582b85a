"""Masking sweep (docs/protocol.md#masking, the paper's Fig. 5): semantic kNN accuracy when queries and
database are both masked at each ratio, showing where semantic information is gone (the reason
the acquisition probes mask 95 %)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from bench import index, plots, processing, results
from bench.encoders.spec import EncoderSpec
from bench.knn import accuracy, class_count
from bench.store import SplitVectors, Store
from bench.tasks.cells import Computed, run_cells
from bench.tasks.options import BACKEND, K, knn_dataset
from bench.tasks.request import RunRequest
from bench.tasks.spec import Column, TaskSpec
from bench.vectors import normalise

NAME = "masking"


def curve(train: SplitVectors, val: SplitVectors, ratios: Sequence[str], k: int, backend: str = "auto") -> dict[str, float]:
    """knn_acc1 (%) per masking op, database and queries under the same op."""
    num_classes = class_count(train, val)
    out: dict[str, float] = {}
    for name in ratios:
        found = index.search(normalise(val.vectors[name]), normalise(train.vectors[name]), k, backend=backend)
        out[name] = accuracy(found.rows, train.labels, val.labels, num_classes)
    return out


def execute(request: RunRequest) -> list[Path]:
    ratios = processing.MASK_SWEEP
    dataset, k = knn_dataset(request, NAME)
    backend = request.value(BACKEND)

    def compute(spec: EncoderSpec, store: Store, key: str) -> Computed:
        train = store.split_vectors(key, spec.name, "train", ratios)
        val = store.split_vectors(key, spec.name, "val", ratios)
        accuracies = curve(train, val, ratios, k, backend)
        num_classes = class_count(train, val)
        return Computed(
            metric="knn_acc1",
            metrics={"knn_acc1": accuracies, "chance": 100.0 / num_classes},
            detail={"ratios": {name: float(processing.get(name).param("ratio")) for name in ratios}, "k": k},
            provenance={"backend": index.resolve_backend(backend)},
        )

    return run_cells(
        request, task=NAME, condition=results.condition(k=k, ratios="-".join(ratios)),
        processings=ratios, splits=("train", "val"), compute=compute, dataset=dataset,
    )


def figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[plots.Figure]:
    """Accuracy against the masked share, one line per encoder (line style by family)."""
    figure, ax = plt.subplots(figsize=(5.6, 3.4))
    styles = {"cvl": "-", "ssl": "--", "sup": "-."}
    for cell in results.ordered(task.primary, cells):  # one colour per encoder, line style by family
        ratios = cell["detail"]["ratios"]
        names = sorted(ratios, key=ratios.get)
        family = cell.get("family", "?")
        ax.plot([100 * ratios[n] for n in names], [cell["metrics"]["knn_acc1"][n] for n in names], marker="o", markersize=3,
                linestyle=styles.get(family, ":"), label=f"{cell['encoder']} ({family.upper()})")
    plots.chance_line(ax, cells, "chance")
    ax.set_xlabel("masked share of the crop (%)")
    ax.set_ylabel("kNN accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
    return [plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('masking', dataset, condition)}.png"),
                         f"Semantic kNN accuracy against the masked share of each crop on {dataset}; where the curve meets "
                         "chance, the visible frame carries no semantic information.")]


TASK = TaskSpec(
    name=NAME,
    description="kNN accuracy with queries and database masked at 0-95 % of the crop (paper §9.2, Fig. 5)",
    execute=execute,
    columns=(
        Column("0%", "knn_acc1.mask0"),
        Column("25%", "knn_acc1.mask25"),
        Column("50%", "knn_acc1.mask50"),
        Column("75%", "knn_acc1.mask75"),
        Column("90%", "knn_acc1.mask90"),
        Column("95%", "knn_acc1.mask95"),
        Column("chance", "chance"),
    ),
    rule=lambda cells: (
        f"knn_acc1 (%): unweighted {results.setting(cells, 'k')}-NN vote, database = train, queries = val, both under the same "
        "masking op (after the encoder's crop: JPEG q95 4:4:4, then a centred black square over that share of the area). "
        "Where accuracy reaches chance, the masked images carry no semantic information."
    ),
    options=(K, BACKEND),
    figures=figures,
)
