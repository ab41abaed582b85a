"""Linear erasure of a processing trace (docs/protocol.md#mitigate): the directions of embedding
space that tell the processing classes apart, learned from train embeddings alone, and the
projection that removes them.

Every train image is stored under every class of the group, so the class means differ by the
processing alone (the content is the same images in every class). Each round removes the
class-mean differences and the weights of a linear probe trained for the processing class, then
L2-normalises again (the tasks compare unit vectors, and normalising can bring a little of the
trace back), until that probe scores within a tolerance of chance on held-out train images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from bench.seeding import stable_int
from bench.tasks.linear_probe import ProbeSettings, TrainingRows, predict, scores, train
from bench.tasks.probes import ProbeDataError
from bench.vectors import SplitVectors, normalise

if TYPE_CHECKING:
    import torch

TOLERANCE = 1.0  # points above chance at which the held-out probe counts as at chance
MAX_ROUNDS = 64  # one direction per round
HELD_OUT_SHARE = 0.2
CHECK_IMAGES = 20000  # train images the check probe sees at most (chosen by hash): the cost stays bounded
CHECK_RATES = (1.0, 10.0, 100.0)  # trained side by side; the best held-out one decides (inputs are unit-norm)
CHECK_SETTINGS = ProbeSettings(epochs=30, trials=1)
CHECK_SEED = 0
PURPOSE = "erasure-holdout"
BLOCK_ROWS = 65536  # rows projected at once: temporaries stay small whatever the split's size


@dataclass(frozen=True)
class Round:
    """One round: the check probe's held-out accuracy before it, and how many directions it removed (1, or 0 for the last)."""

    held_out_acc1: float
    removed: int


@dataclass(frozen=True)
class Erasure:
    """The learned processing subspace and how it was found."""

    basis: np.ndarray  # (D, r) orthonormal columns; r = 0 when the probe was at chance from the start
    rounds: tuple[Round, ...]
    chance: float  # 100 / classes
    tolerance: float
    held_rows: int  # the check probe's held-out rows (images x classes): a small hold-out widens "at chance"

    @property
    def directions(self) -> int:
        return int(self.basis.shape[1])

    @property
    def reached_chance(self) -> bool:
        """Whether the last check stopped the rounds by the same rule that ends them (not by the round limit)."""
        return bool(self.rounds) and at_chance(self.rounds[-1].held_out_acc1, self.chance, self.tolerance, self.held_rows)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Unit vectors with the subspace projected out, normalised again (float32, a new array)."""
        out = np.empty(vectors.shape, dtype=np.float32)
        for start in range(0, len(vectors), BLOCK_ROWS):
            unit = normalise(vectors[start:start + BLOCK_ROWS])
            out[start:start + BLOCK_ROWS] = normalise(unit - (unit @ self.basis) @ self.basis.T)
        return out

    def apply(self, split: SplitVectors) -> SplitVectors:
        """The split with every processing's vectors projected, in memory; the store is not touched."""
        return SplitVectors(split.image_ids, split.labels, {name: self.project(matrix) for name, matrix in split.vectors.items()})


def held_out(image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows) of at most CHECK_IMAGES images, split 80/20 by a hash of the image id."""
    keys = np.array([stable_int(f"{CHECK_SEED}|{PURPOSE}|{image_id}") for image_id in image_ids], dtype=np.uint64)
    chosen = np.sort(np.argsort(keys, kind="stable")[:CHECK_IMAGES])
    held = (keys[chosen] % np.uint64(1000)) < np.uint64(1000 * HELD_OUT_SHARE)
    return chosen[~held], chosen[held]


def class_means(split: SplitVectors, classes: Sequence[str], current: Erasure) -> np.ndarray:
    """(K, D) float64 mean of each class's projected train vectors, a block at a time."""
    means = []
    for name in classes:
        vectors = split.vectors[name]
        total = sum(current.project(vectors[start:start + BLOCK_ROWS]).sum(axis=0, dtype=np.float64)
                    for start in range(0, len(vectors), BLOCK_ROWS))
        means.append(total / len(vectors))
    return np.stack(means)


def check_probe(pool: "torch.Tensor", fit: np.ndarray, held: np.ndarray) -> tuple[float, np.ndarray]:
    """Train linear probes for the processing class on every version of the fit images and test
    them on every version of the held-out ones; (best held-out accuracy in %, its (K, D) weights)."""
    import torch

    classes = pool.shape[0]
    device = pool.device
    members = torch.as_tensor(np.tile(fit, classes), device=device)
    labels = torch.arange(classes, device=device).repeat_interleave(len(fit))[None]
    rows = TrainingRows(pool, members, labels, labels).repeated(len(CHECK_RATES))
    probes = train(rows, classes, list(CHECK_RATES), [0.0] * len(CHECK_RATES),
                   [stable_int(f"{CHECK_SEED}|erasure-probe|{rate}") for rate in CHECK_RATES], CHECK_SETTINGS)
    test = pool[:, torch.as_tensor(held, device=device)].reshape(-1, pool.shape[2])
    accuracy = scores(predict(probes, test), torch.arange(classes, device=device).repeat_interleave(len(held))).acc1
    best = int(np.argmax(accuracy))
    return float(accuracy[best]), probes.weight[best].cpu().numpy().astype(np.float64)


def strongest_direction(means: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The unit direction that best explains both the class-mean differences and the probe's
    weights (each centred over the classes and scaled to unit norm, so neither dominates)."""
    blocks = [block - block.mean(axis=0) for block in (means, weights)]
    stacked = np.concatenate([block / max(np.linalg.norm(block), 1e-30) for block in blocks])
    return np.linalg.svd(stacked, full_matrices=False)[2][0]


def at_chance(accuracy: float, chance: float, tolerance: float, rows: int) -> bool:
    """Whether a held-out accuracy is within the tolerance of chance, or within two binomial
    standard errors of it when the hold-out is too small to resolve the tolerance."""
    error = 100.0 * np.sqrt(chance / 100.0 * (1.0 - chance / 100.0) / max(rows, 1))
    return accuracy <= chance + max(tolerance, 2.0 * error)


def learn(train_split: SplitVectors, classes: Sequence[str], *, tolerance: float = TOLERANCE, max_rounds: int = MAX_ROUNDS,
          device: "torch.device | str" = "cpu") -> Erasure:
    """The processing subspace of one group from the train split alone (docs/protocol.md#mitigate)."""
    import torch

    chance = 100.0 / len(classes)
    fit, held = held_out(train_split.image_ids)
    if len(fit) == 0 or len(held) == 0:
        raise ProbeDataError(f"mitigate needs train images on both sides of its {HELD_OUT_SHARE:.0%} hold-out; "
                             f"the dataset has {len(train_split.image_ids)}: use a dataset with more train images")
    chosen = np.concatenate([fit, held])  # the check probe's images: fit first, then held out
    positions = np.arange(len(chosen))
    dim = next(iter(train_split.vectors.values())).shape[1]
    basis = np.zeros((dim, 0))
    rounds: list[Round] = []
    held_rows = len(held) * len(classes)
    for _ in range(max_rounds + 1):
        current = Erasure(basis, (), chance, tolerance, held_rows)
        versions = np.stack([current.project(train_split.vectors[name][chosen]) for name in classes])  # (K, checked images, D)
        accuracy, weights = check_probe(torch.as_tensor(versions, device=torch.device(device)), positions[:len(fit)], positions[len(fit):])
        if at_chance(accuracy, chance, tolerance, held_rows) or len(rounds) == max_rounds:
            rounds.append(Round(accuracy, 0))
            break
        direction = strongest_direction(class_means(train_split, classes, current), weights)
        direction -= basis @ (basis.T @ direction)  # already orthogonal up to rounding: the vectors lie outside the basis
        rounds.append(Round(accuracy, 1))
        basis = np.concatenate([basis, (direction / np.linalg.norm(direction))[:, None]], axis=1)
    return Erasure(basis, tuple(rounds), chance, tolerance, held_rows)
