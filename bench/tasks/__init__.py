"""Task registry: each task is one module with `execute(options, console)` and its leaderboard columns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console

from bench import registry
from bench.tasks import knn_influence, masking, paircams, probes, similarity
from bench.tasks.options import RunOptions


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    execute: Callable[[RunOptions, Console], list[Path]]
    columns: tuple[tuple[str, str], ...]  # (header, dotted path into the cell's "metrics")
    aggregation: str  # printed under the leaderboard
    default_dataset: str = "demo"  # what `run` uses without --dataset: offline data that fits the task
    decimals: int = 2  # how the leaderboard prints the metrics


TASKS: dict[str, TaskSpec] = registry.build(
    "task",
    [
        TaskSpec(
            name=knn_influence.NAME,
            description="kNN accuracy when the database is processed like / unlike the query (paper §7)",
            execute=knn_influence.execute,
            columns=(
                ("all-same", "knn_acc1.all_same"),
                ("all-diff", "knn_acc1.all_diff"),
                ("pos-same", "knn_acc1.pos_same"),
                ("neg-same", "knn_acc1.neg_same"),
                ("uniform", "knn_acc1.uniform"),
                ("pos−neg", "gap_pos_minus_neg"),
                ("chance", "chance"),
            ),
            aggregation=(
                "knn_acc1 (%): unweighted k-NN vote, database = train, queries = val. all-same: mean over the K "
                "query processings t; all-diff / pos-same / neg-same: mean over the K(K-1) ordered pairs (t, o≠t); "
                "uniform: mean over K query processings × seeds, database images each under a random class. "
                "pos−neg = pos-same − neg-same."
            ),
        ),
        TaskSpec(
            name=paircams.NAME,
            description="PairCams near-duplicate retrieval: recall@1 with same- vs different-camera distractors (paper §8)",
            execute=paircams.execute,
            columns=(
                ("same", "recall_at_1.same"),
                ("different", "recall_at_1.different"),
                ("same−diff", "gap_same_minus_different"),
                ("same dslr", "recall_at_1.same_dslr_compact"),
                ("same phone", "recall_at_1.same_phone"),
                ("diff dslr", "recall_at_1.different_dslr_compact"),
                ("diff phone", "recall_at_1.different_phone"),
                ("chance", "chance"),
            ),
            aggregation=(
                "recall_at_1 (%): a query's top-1 must be its subject's image from the other camera class. same: "
                "distractors are the query's own camera class; different: the target's class. same / different "
                "average the two query directions (dslr = DSLR/compact queries, phone = phone queries). A distractor "
                "tied with the target counts as a miss."
            ),
            default_dataset="paircams-sim",
        ),
        TaskSpec(
            name=similarity.NAME,
            description="cosine similarity split by semantic same/diff x processing same/diff, and the shift (paper §9.1, Fig. 2)",
            execute=similarity.execute,
            columns=(
                ("sem= proc=", "mean_cosine.semantic_same/processing_same"),
                ("sem= proc≠", "mean_cosine.semantic_same/processing_diff"),
                ("shift sem=", "shift_semantic_same"),
                ("sem≠ proc=", "mean_cosine.semantic_diff/processing_same"),
                ("sem≠ proc≠", "mean_cosine.semantic_diff/processing_diff"),
                ("shift sem≠", "shift_semantic_diff"),
            ),
            aggregation=(
                "mean cosine similarity from every val query under the group's last class (jpeg95_444 for jpeg) to "
                "every train image under that class (proc=) and under the group's first class (proc≠), split by "
                "whether the semantic labels match (sem= / sem≠). shift = proc= minus proc≠ within a semantic group: "
                "how much sharing the query's processing raises similarity. Histograms are in each cell's detail."
            ),
            decimals=3,
        ),
        TaskSpec(
            name=masking.NAME,
            description="kNN accuracy with queries and database masked at 0-95 % of the crop (paper §9.2, Fig. 5)",
            execute=masking.execute,
            columns=(
                ("0%", "knn_acc1.mask0"),
                ("25%", "knn_acc1.mask25"),
                ("50%", "knn_acc1.mask50"),
                ("75%", "knn_acc1.mask75"),
                ("90%", "knn_acc1.mask90"),
                ("95%", "knn_acc1.mask95"),
                ("chance", "chance"),
            ),
            aggregation=(
                "knn_acc1 (%): unweighted k-NN vote, database = train, queries = val, both under the same masking op "
                "(after the encoder's crop: JPEG q95 4:4:4, then a centred black square over that share of the area). "
                "Where accuracy reaches chance, the masked images carry no semantic information."
            ),
        ),
        TaskSpec(
            name=probes.PROCESSING_NAME,
            description="linear probe: recover each image's processing class from its embedding (paper §6.1, Fig. 4)",
            execute=probes.execute_processing,
            columns=(
                ("probe acc", "probe_acc1.mean"),
                ("± std", "probe_acc1.std"),
                ("chance", "chance"),
                ("search val", "search.val_acc1"),
            ),
            aggregation=(
                "probe_acc1 (%): one linear layer on L2-normalised embeddings (SGD, momentum 0.9, batch 1024, cosine "
                "schedule, final epoch). Each train image under one processing class drawn at random; tested on every "
                "val image under every class. Mean ± std over the label seeds, with lr and weight decay from a 30-trial "
                "TPE search on an 80/20 split of train (its best held-out accuracy: search val)."
            ),
        ),
        TaskSpec(
            name=probes.ACQUISITION_NAME,
            description="linear probe: recover the camera attribute (make, model, ISO, ...) from masked images (paper §6.2-6.3)",
            execute=probes.execute_acquisition,
            columns=(
                ("probe acc", "probe_acc1"),
                ("mean class acc", "probe_mean_class_acc"),
                ("chance", "chance"),
                ("majority", "majority"),
                ("search val", "search.val_acc1"),
            ),
            aggregation=(
                "probe_acc1 (%): one linear layer on L2-normalised embeddings of the masked images (95 % of each crop "
                "black unless --mask says otherwise), lr and weight decay from a 30-trial TPE search trained on train and "
                "scored on val (search val), then retrained on train + val and tested once on test. mean class acc: "
                "per-class accuracy averaged over the test classes; chance = 1 / classes; majority = the largest test class."
            ),
            default_dataset="cameras",
        ),
    ],
)


def get(name: str) -> TaskSpec:
    return registry.lookup("task", TASKS, name)
