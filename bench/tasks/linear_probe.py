"""The paper's linear probe on frozen embeddings (docs/protocol.md#linear-probe) and its hyper-parameter search.

One `Linear(D, K)` with bias on L2-normalised features, cross-entropy, SGD with momentum 0.9
and weight decay (on the bias too, as torch's SGD over `model.parameters()` does), batch 1024,
100 epochs reshuffled every epoch, a cosine learning-rate schedule, and the final-epoch model.

Several probes train side by side in lockstep (one batched matmul per step): the 10 label
seeds of the processing probe, and the random start of the Optuna search. Each probe draws its
initial weights and its epoch orders from its own generator, so a probe trained alongside others
ends exactly where it would alone (up to float summation order), and batching the search's
random-start trials picks the same hyper-parameters as asking for them one at a time.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from bench.seeding import stable_int

if TYPE_CHECKING:  # torch loads only when a probe trains: listing tasks stays quick
    import torch

SCHEDULES = ("paper", "cosine")


@dataclass(frozen=True)
class ProbeSettings:
    """Training and search settings; the defaults are the paper's."""

    epochs: int = 100
    batch_size: int = 1024
    momentum: float = 0.9
    # paper: the LR is stepped after each epoch with that epoch's index, so epochs 0 and 1 both
    # run at lr0 and epoch e >= 1 at lr0·½(1+cos(π(e-1)/E)); cosine: epoch e at lr0·½(1+cos(πe/E)).
    schedule: str = "paper"
    trials: int = 30
    startup_trials: int = 10  # TPE's random start (Optuna's default), trained side by side
    lr_range: tuple[float, float] = (0.1, 100.0)  # log-uniform; high because inputs are unit-norm
    wd_range: tuple[float, float] = (1e-12, 1e-4)  # log-uniform

    def __post_init__(self) -> None:
        _check_schedule(self.schedule)
        if self.epochs < 1 or self.batch_size < 1 or self.trials < 1:
            raise ValueError("epochs, batch size and trials must be at least 1")


def _check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")


def epoch_learning_rates(lr: float, epochs: int, schedule: str = "paper") -> np.ndarray:
    """The learning rate each epoch runs at."""
    _check_schedule(schedule)
    epoch = np.arange(epochs, dtype=np.float64)
    if schedule == "paper":
        return lr * 0.5 * (1.0 + np.cos(math.pi * np.maximum(epoch - 1.0, 0.0) / epochs))
    return lr * 0.5 * (1.0 + np.cos(math.pi * epoch / epochs))


@dataclass(frozen=True)
class TrainingRows:
    """What S probes train on: row i of probe s is pool[choice[s, i], members[i]], labelled labels[s, i].

    The pool holds the same images under P versions (processing classes), so the probes of the
    processing probe can each see a different version of every image without copying vectors."""

    pool: torch.Tensor  # (P, N, D) float32, unit-norm rows
    members: torch.Tensor  # (n,) int64 rows of the pool's N axis that take part
    choice: torch.Tensor  # (S, n) int64 in [0, P)
    labels: torch.Tensor  # (S, n) int64 in [0, K)

    def repeated(self, probes: int) -> "TrainingRows":
        """The same rows for `probes` probes (a single-version data set trained under several settings)."""
        return TrainingRows(self.pool, self.members, self.choice[:1].expand(probes, -1), self.labels[:1].expand(probes, -1))


def single_version(features: np.ndarray, labels: np.ndarray, device: torch.device) -> TrainingRows:
    """TrainingRows for one probe over one matrix of (already normalised) features."""
    import torch

    pool = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32), device=device)[None]
    count = pool.shape[1]
    return TrainingRows(
        pool=pool,
        members=torch.arange(count, device=device),
        choice=torch.zeros((1, count), dtype=torch.int64, device=device),
        labels=torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)[None],
    )


@dataclass(frozen=True)
class Probes:
    """S trained probes. A probe whose loss went non-finite stopped there (as the paper's
    trainer does) and keeps the weights that produced it."""

    weight: torch.Tensor  # (S, K, D)
    bias: torch.Tensor  # (S, K)
    diverged: np.ndarray  # (S,) bool


def generator_for(seed: int, device: torch.device) -> torch.Generator:
    """A probe's own random stream: its initial weights, then one permutation per epoch."""
    import torch

    return torch.Generator(device=device).manual_seed(seed & (2**63 - 1))


def initial_parameters(generator: torch.Generator, classes: int, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.nn.Linear's default initialisation: weight and bias uniform in ±1/sqrt(D)."""
    import torch

    bound = 1.0 / math.sqrt(dim)
    weight = (torch.rand((classes, dim), generator=generator, device=device) * 2.0 - 1.0) * bound
    bias = (torch.rand((classes,), generator=generator, device=device) * 2.0 - 1.0) * bound
    return weight, bias


def train(
    rows: TrainingRows,
    classes: int,
    learning_rates: Sequence[float],
    weight_decays: Sequence[float],
    seeds: Sequence[int],
    settings: ProbeSettings = ProbeSettings(),
) -> Probes:
    """Train S probes in lockstep, probe s with (learning_rates[s], weight_decays[s], seeds[s])."""
    import torch

    probes, count = rows.choice.shape
    if not len(learning_rates) == len(weight_decays) == len(seeds) == probes:
        raise ValueError(f"{probes} probes need as many learning rates, weight decays and seeds")
    device = rows.pool.device
    versions, pool_rows, dim = rows.pool.shape
    flat = rows.pool.reshape(versions * pool_rows, dim)
    generators = [generator_for(seed, device) for seed in seeds]
    initial = [initial_parameters(generator, classes, dim, device) for generator in generators]
    weight = torch.stack([w for w, _ in initial])
    bias = torch.stack([b for _, b in initial])
    velocity_weight = torch.zeros_like(weight)
    velocity_bias = torch.zeros_like(bias)
    decay = torch.tensor(list(weight_decays), dtype=torch.float32, device=device)
    schedule = torch.tensor(
        np.stack([epoch_learning_rates(lr, settings.epochs, settings.schedule) for lr in learning_rates]), dtype=torch.float32, device=device
    )
    alive = torch.ones(probes, dtype=torch.bool, device=device)
    flat_rows = rows.choice * pool_rows + rows.members[None, :]  # (S, n) rows of `flat`
    buffer = torch.empty((probes * min(settings.batch_size, count), dim), dtype=flat.dtype, device=device)
    for epoch in range(settings.epochs):
        order = torch.stack([torch.randperm(count, generator=generator, device=device) for generator in generators])
        rate = schedule[:, epoch]
        for start in range(0, count, settings.batch_size):
            batch = order[:, start:start + settings.batch_size]  # (S, b)
            picked = torch.gather(flat_rows, 1, batch).reshape(-1)
            # one reused buffer: a fresh (S, b, D) tensor per step costs page faults (sys time) on CPU
            inputs = torch.index_select(flat, 0, picked, out=buffer[: picked.numel()]).view(probes, -1, dim)
            targets = torch.gather(rows.labels, 1, batch).unsqueeze(-1)  # (S, b, 1)
            logits = torch.baddbmm(bias.unsqueeze(1), inputs, weight.transpose(1, 2))
            log_probabilities = torch.log_softmax(logits, dim=-1)
            # the paper stops a probe whose batch loss is not finite, before that step's update
            alive &= torch.isfinite(log_probabilities.gather(-1, targets)).all(dim=2).all(dim=1)
            gradient = log_probabilities.exp_()
            gradient.scatter_add_(-1, targets, torch.full_like(targets, -1.0, dtype=gradient.dtype))
            gradient /= batch.shape[1]  # mean cross-entropy over the batch
            velocity_weight.mul_(settings.momentum).add_(torch.bmm(gradient.transpose(1, 2), inputs) + decay[:, None, None] * weight)
            velocity_bias.mul_(settings.momentum).add_(gradient.sum(dim=1) + decay[:, None] * bias)
            weight = torch.where(alive[:, None, None], weight - rate[:, None, None] * velocity_weight, weight)
            bias = torch.where(alive[:, None], bias - rate[:, None] * velocity_bias, bias)
    return Probes(weight, bias, (~alive).cpu().numpy())


def predict(probes: Probes, features: torch.Tensor, block: int = 16384) -> torch.Tensor:
    """(S, M) predicted classes of M feature rows under each probe; NaN logits never win."""
    import torch

    out = []
    for start in range(0, features.shape[0], block):
        chunk = features[start:start + block]
        logits = torch.baddbmm(probes.bias.unsqueeze(1), chunk.expand(probes.weight.shape[0], -1, -1), probes.weight.transpose(1, 2))
        out.append(torch.nan_to_num(logits, nan=-math.inf).argmax(dim=-1))
    return torch.cat(out, dim=1)


@dataclass(frozen=True)
class Scores:
    acc1: np.ndarray  # (S,) top-1 accuracy in %
    mean_class_acc: np.ndarray  # (S,) mean over the classes present of per-class accuracy, in %


def scores(predicted: torch.Tensor, labels: torch.Tensor) -> Scores:
    """Top-1 and mean per-class accuracy (%) of each probe's predictions."""
    import torch

    correct = (predicted == labels[None, :]).double()
    present = torch.unique(labels)
    per_class = torch.stack([correct[:, labels == label].mean(dim=1) for label in present], dim=1)
    return Scores((100.0 * correct.mean(dim=1)).cpu().numpy(), (100.0 * per_class.mean(dim=1)).cpu().numpy())


@dataclass(frozen=True)
class Trial:
    number: int
    lr: float
    wd: float
    val_acc1: float
    diverged: bool


@dataclass(frozen=True)
class Search:
    trials: tuple[Trial, ...]
    best: Trial
    seed: int


class ProbeDependencyError(ImportError):
    """Optuna, which runs the probes' hyper-parameter search, is not installed."""


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ProbeDependencyError(
            "the probe tasks search hyper-parameters with Optuna, which is not installed: pip install -e \".[probe]\""
        ) from None
    return optuna


def trial_seed(seed: int, number: int) -> int:
    """The training seed of search trial `number`: a pure function of the search seed."""
    return stable_int(f"{seed}|probe-trial|{number}")


def search(
    train_rows: TrainingRows,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    classes: int,
    settings: ProbeSettings = ProbeSettings(),
    seed: int = 22,
    on_trial: Callable[[Trial], None] | None = None,
) -> Search:
    """Optuna TPE (multivariate, grouped, seeded) over lr and wd, maximising val accuracy (§6.0)."""
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed, n_startup_trials=settings.startup_trials)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    done: list[Trial] = []

    def ask(count: int) -> list[tuple[object, float, float]]:
        asked = []
        for _ in range(count):
            trial = study.ask()
            asked.append((trial, trial.suggest_float("lr", *settings.lr_range, log=True), trial.suggest_float("wd", *settings.wd_range, log=True)))
        return asked

    def run(asked: list[tuple[object, float, float]]) -> None:
        numbers = [trial.number for trial, _, _ in asked]
        probes = train(
            train_rows.repeated(len(asked)), classes, [lr for _, lr, _ in asked], [wd for _, _, wd in asked],
            [trial_seed(seed, number) for number in numbers], settings,
        )
        accuracies = scores(predict(probes, val_features), val_labels).acc1
        for (trial, lr, wd), accuracy, diverged in zip(asked, accuracies, probes.diverged):
            study.tell(trial, float(accuracy))
            done.append(Trial(trial.number, lr, wd, float(accuracy), bool(diverged)))
            if on_trial is not None:
                on_trial(done[-1])

    # Random-start trials do not depend on each other's results: asking them together gives the
    # same parameters as asking one by one, and they train side by side.
    run(ask(min(settings.startup_trials, settings.trials)))
    while len(done) < settings.trials:
        run(ask(1))
    best = max(done, key=lambda trial: (trial.val_acc1, -trial.number))  # first of the best, as Optuna
    return Search(tuple(done), best, seed)
