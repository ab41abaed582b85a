"""The ways mitigate removes a processing trace from embeddings (docs/tasks/mitigate.md): each is
fitted on the train split's vectors under ONE processing group's classes, and then applied in
memory to any split under any processing, the classes it never saw included (its transfer).

- projection: the linear subspace bench.tasks.erasure learns, projected out of every vector;
- adversarial: a D x D linear map (identity at first), trained against a processing classifier
  that is retrained as the map moves, with a penalty that keeps the moved vectors close to the originals;
- normalise: each processing class standardised by its own train mean and standard deviation.
  It needs the processing class of every vector it is given, queries included; a class it has no
  statistics for gets the statistics pooled over the classes it was fitted on.

Every method hands back unit vectors (the tasks compare unit vectors) and never touches the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from bench.errors import UsageError
from bench.seeding import stable_int
from bench.vectors import SplitVectors, normalise

if TYPE_CHECKING:
    import torch

    from bench.tasks import erasure

PROJECTION, ADVERSARIAL, NORMALISE = "projection", "adversarial", "normalise"
METHODS = (PROJECTION, ADVERSARIAL, NORMALISE)
DEFAULT_METHOD = PROJECTION
BLOCK_ROWS = 65536  # rows transformed at once: temporaries stay small whatever the split's size
STD_FLOOR = 1e-6  # a dimension that does not vary is centred, not blown up


class Mitigator(Protocol):
    """A fitted method: what it does to a split, and its record for the cell."""

    needs_class_at_test: bool  # whether apply reads each vector's processing class (normalise)

    def apply(self, split: SplitVectors) -> SplitVectors:
        """The split with every processing's vectors transformed, as unit vectors, in memory."""

    def record(self) -> dict[str, Any]:
        """How it was fitted, for the cell's detail."""


def parse_method(text: str) -> str:
    """The method --method names; anything else is a usage error naming the choices."""
    name = str(text).strip().lower()
    if name not in METHODS:
        raise UsageError(f"unknown --method {text!r}; choose one of: {', '.join(METHODS)}")
    return name


# ---------------------------------------------------------------------------------------------
# projection
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """The learned processing subspace, projected out of every vector (bench.tasks.erasure)."""

    erased: "erasure.Erasure"
    needs_class_at_test: bool = False

    def apply(self, split: SplitVectors) -> SplitVectors:
        return self.erased.apply(split)

    def record(self) -> dict[str, Any]:
        return {"directions": self.erased.directions, "rounds": [asdict(step) for step in self.erased.rounds],
                "reached_chance": self.erased.reached_chance}


# ---------------------------------------------------------------------------------------------
# normalise
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupNormalisation:
    """(f − mean_c) / std_c per processing class c, with train statistics of unit vectors."""

    means: dict[str, np.ndarray]  # class -> (D,) float64
    stds: dict[str, np.ndarray]
    pooled: tuple[np.ndarray, np.ndarray]  # (mean, std) over the fitted classes together: for a class it never saw
    needs_class_at_test: bool = True

    def transform(self, name: str, vectors: np.ndarray) -> np.ndarray:
        mean, std = (self.means[name], self.stds[name]) if name in self.means else self.pooled
        out = np.empty(vectors.shape, dtype=np.float32)
        for start in range(0, len(vectors), BLOCK_ROWS):
            unit = normalise(vectors[start:start + BLOCK_ROWS])
            out[start:start + BLOCK_ROWS] = normalise((unit - mean) / std)
        return out

    def apply(self, split: SplitVectors) -> SplitVectors:
        return SplitVectors(split.image_ids, split.labels, {name: self.transform(name, matrix) for name, matrix in split.vectors.items()})

    def record(self) -> dict[str, Any]:
        return {"classes": list(self.means), "unseen_classes": "standardised by the statistics pooled over these classes",
                "std_floor": STD_FLOOR}


def _moments(vectors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (floored) of unit vectors, per dimension, in float64."""
    total = sum(normalise(matrix).sum(axis=0, dtype=np.float64) for matrix in vectors)
    squares = sum(np.square(normalise(matrix), dtype=np.float64).sum(axis=0) for matrix in vectors)
    rows = sum(len(matrix) for matrix in vectors)
    mean = total / rows
    return mean, np.maximum(np.sqrt(np.maximum(squares / rows - mean**2, 0.0)), STD_FLOOR)


def fit_normalisation(train: SplitVectors, classes: Sequence[str]) -> GroupNormalisation:
    """Per-class statistics from the train split alone."""
    found = {name: _moments([train.vectors[name]]) for name in classes}
    return GroupNormalisation({name: mean for name, (mean, _) in found.items()}, {name: std for name, (_, std) in found.items()},
                              _moments([train.vectors[name] for name in classes]))


# ---------------------------------------------------------------------------------------------
# adversarial
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdversarialSettings:
    """How W is trained (docs/tasks/mitigate.md#adversarial). Both players read the train rows
    standardised (z = (f − mean) / std per dimension), so the settings mean the same for every
    encoder whatever its scale: every step the classifier takes `critic_steps` Adam steps on a
    batch of A z (A fixed), then A one plain gradient step against it."""

    steps: int = 600
    batch: int = 256  # (image, class) rows drawn per step, with replacement, from every train image under every class
    step_size: float = 1.0  # A's learning rate times D (mean ||z||^2 = D): the penalty's pull is stable for any D; cosine decay to 0
    momentum: float = 0.9
    critic_lr: float = 1e-2
    critic_steps: int = 5
    penalty: float = 1.0  # lambda on mean ||A z − z||^2, the move measured in each dimension's own train spread
    seed: int = 0


@dataclass(frozen=True)
class LinearMap:
    """The trained map as it acts on unit vectors, f -> W f + b (W = S A S^-1, b = m − W m for
    the train rows' mean m and per-dimension spread S), and how its training ended."""

    weight: np.ndarray  # (D, D) float32
    bias: np.ndarray  # (D,) float32
    settings: AdversarialSettings
    critic_acc1: tuple[float, ...]  # the classifier's accuracy on its batch, every tenth step and the last, %
    distortion: float  # mean ||A z − z||^2 over the train rows at the end: the move the penalty weighs
    moved: float  # mean ||W f + b − f||^2 over the train rows (unit vectors f) at the end
    needs_class_at_test: bool = False

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        out = np.empty(vectors.shape, dtype=np.float32)
        for start in range(0, len(vectors), BLOCK_ROWS):
            out[start:start + BLOCK_ROWS] = normalise(normalise(vectors[start:start + BLOCK_ROWS]) @ self.weight.T + self.bias)
        return out

    def apply(self, split: SplitVectors) -> SplitVectors:
        return SplitVectors(split.image_ids, split.labels, {name: self.transform(matrix) for name, matrix in split.vectors.items()})

    def record(self) -> dict[str, Any]:
        return {"settings": asdict(self.settings), "critic_acc1": list(self.critic_acc1), "distortion": self.distortion,
                "moved": self.moved,
                "objective": "confusion: cross-entropy of the classifier on A z against the uniform distribution "
                             "+ penalty * mean ||A z - z||^2, z the train rows standardised per dimension"}


def train_adversarial(train: SplitVectors, classes: Sequence[str], settings: AdversarialSettings = AdversarialSettings(),
                      device: "torch.device | str" = "cpu") -> LinearMap:
    """W from the train split alone, against a processing classifier of the group's classes."""
    import torch

    device = torch.device(device)
    generator = torch.Generator().manual_seed(stable_int(f"{settings.seed}|adversarial-mitigation"))
    pool = torch.as_tensor(np.concatenate([normalise(train.vectors[name]) for name in classes]), device=device)  # (K·N, D)
    labels = torch.arange(len(classes), device=device).repeat_interleave(len(train.image_ids))
    # standardised rows: the trace is small beside the content, and one step size then serves every encoder
    centre, scale = pool.mean(dim=0), pool.std(dim=0).clamp_min(STD_FLOOR)
    rows_z = (pool - centre) / scale
    dim = pool.shape[1]
    mix = torch.eye(dim, device=device, requires_grad=True)  # A
    critic = torch.nn.Linear(dim, len(classes)).to(device)
    with torch.no_grad():
        bound = 1.0 / dim**0.5
        critic.weight.copy_((torch.rand(critic.weight.shape, generator=generator) * 2 - 1) * bound)
        critic.bias.copy_((torch.rand(critic.bias.shape, generator=generator) * 2 - 1) * bound)
    # plain gradient steps keep A − I inside the span of the train rows and of the classifier's directions; Adam's
    # per-entry steps would fill every entry and move directions no train row spans, i.e. move val vectors unseen
    mover = torch.optim.SGD([mix], lr=settings.step_size / dim, momentum=settings.momentum)
    judge = torch.optim.Adam(critic.parameters(), lr=settings.critic_lr)
    # A's steps shrink to 0 along a cosine: with a constant rate the two players circle the trace's removal instead of reaching it
    settle = torch.optim.lr_scheduler.CosineAnnealingLR(mover, settings.steps)
    accuracy: list[float] = []
    for step in range(settings.steps):
        rows = torch.randint(len(rows_z), (settings.batch,), generator=generator).to(device)
        batch, truth = rows_z[rows], labels[rows]
        moved = batch @ mix.T
        inputs = moved.detach()
        for _ in range(settings.critic_steps):
            judge.zero_grad()
            torch.nn.functional.cross_entropy(critic(inputs), truth).backward()
            judge.step()
        if step % 10 == 0 or step == settings.steps - 1:
            with torch.no_grad():
                accuracy.append(float(100.0 * (critic(inputs).argmax(dim=1) == truth).float().mean()))
        mover.zero_grad()
        confusion = -torch.log_softmax(critic(moved), dim=1).mean()  # cross-entropy against the uniform distribution
        loss = confusion + settings.penalty * (moved - batch).square().sum(dim=1).mean()
        loss.backward()
        mover.step()
        settle.step()
    with torch.no_grad():
        final = mix.detach().double()
        weight = scale.double()[:, None] * final / scale.double()[None, :]
        bias = centre.double() - weight @ centre.double()
        distortion = moved_by = 0.0
        for start in range(0, len(pool), BLOCK_ROWS):
            block_z, block = rows_z[start:start + BLOCK_ROWS].double(), pool[start:start + BLOCK_ROWS].double()
            distortion += float((block_z @ final.T - block_z).square().sum())
            moved_by += float((block @ weight.T + bias - block).square().sum())
    return LinearMap(weight.cpu().numpy().astype(np.float32), bias.cpu().numpy().astype(np.float32), settings, tuple(accuracy),
                     distortion / len(pool), moved_by / len(pool))


# ---------------------------------------------------------------------------------------------
# one entry point
# ---------------------------------------------------------------------------------------------


def fit(method: str, train: SplitVectors, classes: Sequence[str], *, device: "torch.device | str" = "cpu",
        adversarial: AdversarialSettings = AdversarialSettings()) -> Mitigator:
    """The method fitted on the train split's vectors under `classes` (one group) alone."""
    if method == PROJECTION:
        from bench.tasks import erasure

        return Projection(erasure.learn(train, classes, device=device))
    if method == NORMALISE:
        return fit_normalisation(train, classes)
    if method == ADVERSARIAL:
        return train_adversarial(train, classes, adversarial, device)
    raise UsageError(f"unknown mitigation method {method!r}; choose one of: {', '.join(METHODS)}")
