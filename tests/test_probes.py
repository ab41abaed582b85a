"""Linear probes (docs/protocol.md#linear-probe): the trainer against torch's own SGD, the schedule, the search,
planted signals found and noise left at chance, and both probe tasks end to end."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.vectors import SplitVectors
from bench.tasks import linear_probe, probe_acquisition, probe_processing
from bench.tasks.linear_probe import ProbeSettings
from bench.vectors import normalise
from tests.conftest import run_bench

pytestmark = pytest.mark.usefixtures("single_thread")


def processing_splits(rng: np.random.Generator, classes: int, train: int, val: int, dim: int, signal: float) -> tuple[SplitVectors, SplitVectors]:
    """Each image = a random scene vector + a class direction scaled by `signal` + per-version noise."""
    directions = rng.normal(size=(classes, dim))
    names = tuple(f"c{c}" for c in range(classes))

    def split(count: int, prefix: str) -> SplitVectors:
        scenes = rng.normal(size=(count, dim))
        vectors = {
            name: (scenes + signal * directions[c] + 0.3 * rng.normal(size=(count, dim))).astype(np.float32)
            for c, name in enumerate(names)
        }
        return SplitVectors(np.array([f"{prefix}{i:04d}" for i in range(count)]), np.zeros(count, dtype=np.int64), vectors)

    return split(train, "t"), split(val, "v")


def test_trainer_matches_torch_linear_sgd_and_cross_entropy() -> None:
    rng = np.random.default_rng(0)
    count, dim, classes, epochs = 2500, 24, 5, 4
    features = normalise(rng.normal(size=(count, dim)))
    labels = rng.integers(0, classes, count)
    settings = ProbeSettings(epochs=epochs)
    trained = linear_probe.train(linear_probe.single_version(features, labels, torch.device("cpu")), classes, [3.0], [1e-4], [7], settings)

    generator = linear_probe.generator_for(7, torch.device("cpu"))
    weight, bias = linear_probe.initial_parameters(generator, classes, dim, torch.device("cpu"))
    layer = torch.nn.Linear(dim, classes)
    layer.weight.data, layer.bias.data = weight.clone(), bias.clone()
    optimiser = torch.optim.SGD(layer.parameters(), lr=3.0, momentum=0.9, weight_decay=1e-4)
    inputs, targets = torch.tensor(features), torch.tensor(labels)
    for epoch, rate in enumerate(linear_probe.epoch_learning_rates(3.0, epochs, "paper")):
        for group in optimiser.param_groups:
            group["lr"] = float(rate)
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, settings.batch_size):
            rows = order[start:start + settings.batch_size]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(layer(inputs[rows]), targets[rows]).backward()
            optimiser.step()
    assert torch.allclose(trained.weight[0], layer.weight, atol=1e-5)
    assert torch.allclose(trained.bias[0], layer.bias, atol=1e-5)
    assert not trained.diverged[0]


def test_probes_in_lockstep_end_where_each_would_alone_and_divergence_stays_local() -> None:
    rng = np.random.default_rng(1)
    features = normalise(rng.normal(size=(1500, 16)))
    labels = rng.integers(0, 3, 1500)
    rows = linear_probe.single_version(features, labels, torch.device("cpu"))
    settings = ProbeSettings(epochs=3)
    together = linear_probe.train(rows.repeated(3), 3, [0.5, 1e37, 20.0], [1e-6, 1e-6, 1e-9], [1, 2, 3], settings)
    assert together.diverged.tolist() == [False, True, False]
    for probe, (lr, wd, seed) in enumerate(((0.5, 1e-6, 1), (20.0, 1e-9, 3))):
        alone = linear_probe.train(rows, 3, [lr], [wd], [seed], settings)
        index = 0 if probe == 0 else 2
        assert torch.allclose(together.weight[index], alone.weight[0], atol=1e-5)
    predicted = linear_probe.predict(together, torch.tensor(features))
    assert predicted.shape == (3, 1500) and int(predicted.min()) >= 0 and int(predicted.max()) < 3


@pytest.mark.parametrize("schedule", ["paper", "cosine"])
def test_learning_rate_schedules(schedule: str) -> None:
    rates = linear_probe.epoch_learning_rates(2.0, 100, schedule)
    assert rates[0] == pytest.approx(2.0) and np.all(np.diff(rates) <= 1e-12) and rates[-1] > 0
    if schedule == "paper":  # the off-by-one of §6.0: epochs 0 and 1 both at lr0, the last at ~1e-3 lr0
        assert rates[1] == pytest.approx(2.0)
        assert rates[99] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 98 / 100)))
    else:
        assert rates[1] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi / 100)))
        assert rates[99] < linear_probe.epoch_learning_rates(2.0, 100, "paper")[99]


def test_search_asks_optuna_exactly_as_one_trial_at_a_time() -> None:
    """Asking the random-start trials together must not change which parameters TPE proposes."""
    import optuna

    rng = np.random.default_rng(2)
    features = normalise(rng.normal(size=(200, 8)))
    labels = (features[:, 0] > 0).astype(np.int64)
    rows = linear_probe.single_version(features[:150], labels[:150], torch.device("cpu"))
    settings = ProbeSettings(epochs=5, trials=14)
    found = linear_probe.search(rows, torch.tensor(features[150:]), torch.tensor(labels[150:]), 2, settings, seed=5)
    assert [trial.number for trial in found.trials] == list(range(14))
    assert found.best.val_acc1 == max(trial.val_acc1 for trial in found.trials)
    for trial in found.trials:
        assert 0.1 <= trial.lr <= 100 and 1e-12 <= trial.wd <= 1e-4

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, seed=5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for trial in found.trials:
        asked = study.ask()
        assert asked.suggest_float("lr", 0.1, 100.0, log=True) == trial.lr
        assert asked.suggest_float("wd", 1e-12, 1e-4, log=True) == trial.wd
        study.tell(asked, trial.val_acc1)


def test_processing_probe_finds_a_planted_signal() -> None:
    train, val = processing_splits(np.random.default_rng(3), classes=4, train=400, val=60, dim=32, signal=1.5)
    outcome = probe_processing.processing_probe(train, val, tuple(train.vectors))
    assert outcome.acc1.shape == (10,) and outcome.test_rows == 4 * 60
    assert outcome.acc1.mean() > 97.0
    assert len(outcome.search.trials) == 30
    fit, held = outcome.search_rows
    assert fit + held == 400 and abs(held - 80) <= 4  # the search scores on the held-out 20 %, stratified by class


def test_processing_probe_on_noise_stays_at_chance() -> None:
    train, val = processing_splits(np.random.default_rng(4), classes=4, train=400, val=100, dim=32, signal=0.0)
    outcome = probe_processing.processing_probe(train, val, tuple(train.vectors), settings=ProbeSettings(trials=8))
    assert abs(outcome.acc1.mean() - 25.0) < 5.0
    assert outcome.acc1.std() > 0  # each seed draws its own labels


def test_label_draws_and_holdout_are_keyed_by_image_id() -> None:
    ids = np.array([f"img{i}" for i in range(3000)])
    drawn = probe_processing.class_assignment(22, ids, 3)
    assert np.all(np.abs(np.bincount(drawn, minlength=3) / 3000 - 1 / 3) < 0.04)  # i.i.d. uniform, not exactly balanced
    shuffled = np.random.default_rng(0).permutation(3000)
    assert np.array_equal(probe_processing.class_assignment(22, ids[shuffled], 3), drawn[shuffled])
    assert not np.array_equal(probe_processing.class_assignment(0, ids, 3), drawn)

    kept, held = probe_processing.stratified_holdout(22, ids, drawn)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 3000
    for label in range(3):
        members = np.flatnonzero(drawn == label)
        assert len(np.intersect1d(held, members)) == int(0.2 * len(members) + 0.5)
    kept_again, held_again = probe_processing.stratified_holdout(22, ids[shuffled], drawn[shuffled])
    assert set(ids[shuffled][held_again]) == set(ids[held])


def test_each_final_seed_trains_on_its_own_class_draw() -> None:
    ids = np.array([f"img{i}" for i in range(500)])
    rows = probe_processing.seed_rows(torch.zeros((4, 500, 2)), ids, [0, 1, 7])
    for index, seed in enumerate((0, 1, 7)):
        assert np.array_equal(rows.choice[index].numpy(), probe_processing.class_assignment(seed, ids, 4))
    assert torch.equal(rows.labels, rows.choice) and rows.members.tolist() == list(range(500))
    assert not torch.equal(rows.choice[0], rows.choice[1])


def acquisition_split(rng: np.random.Generator, centres: np.ndarray, count: int, prefix: str, noise: float) -> SplitVectors:
    labels = np.arange(count) % len(centres)
    vectors = centres[labels] + noise * rng.normal(size=(count, centres.shape[1]))
    return SplitVectors(np.array([f"{prefix}{i}" for i in range(count)]), labels.astype(np.int64), {"mask95": vectors.astype(np.float32)})


def test_acquisition_probe_searches_on_val_then_retrains_on_train_and_val() -> None:
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(5, 24))
    splits = [acquisition_split(rng, centres, count, prefix, 1.0) for count, prefix in ((300, "a"), (100, "b"), (100, "c"))]
    outcome = probe_acquisition.acquisition_probe(*splits, "mask95", settings=ProbeSettings(trials=12))
    assert outcome.train_rows == 400 and outcome.test_rows == 100 and outcome.classes == 5
    assert outcome.search_rows == (300, 100)
    assert outcome.acc1[0] > 90.0 and outcome.mean_class_acc[0] > 90.0

    noise = [acquisition_split(rng, np.zeros((5, 24)), count, prefix, 1.0) for count, prefix in ((300, "a"), (100, "b"), (500, "c"))]
    chance = probe_acquisition.acquisition_probe(*noise, "mask95", settings=ProbeSettings(trials=6))
    assert abs(chance.acc1[0] - 20.0) < 8.0


def test_missing_optuna_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    rows = linear_probe.single_version(np.eye(4, dtype=np.float32), np.arange(4), torch.device("cpu"))
    with pytest.raises(linear_probe.ProbeDependencyError, match=r"\.\[probe\]"):
        linear_probe.search(rows, torch.eye(4), torch.arange(4), 4, ProbeSettings(trials=1, epochs=1))


def test_probe_processing_cli_writes_a_cell_and_a_leaderboard(tmp_path: Path) -> None:
    arguments = ("run", "probe-processing", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random",
                 "--group", "sharpening", "--trials", "6", "--seeds", "3", "--epochs", "40")
    first = run_bench(tmp_path, *arguments)
    assert first.returncode == 0, first.stderr
    cells = list((tmp_path / "reports" / "results" / "probe-processing").glob("**/*.json"))
    assert len(cells) == 1
    cell = json.loads(cells[0].read_text())
    assert cell["condition"] == "epochs=40,group=sharpening,schedule=paper,seeds=3,trials=6"
    assert len(cell["detail"]["seeds"]) == 3 and len(cell["detail"]["trials"]) == 6
    assert cell["detail"]["test_rows"] == 3 * 22  # demo-mini: 11 photos x 2 val crops, under each of 3 classes
    assert cell["metrics"]["chance"] == pytest.approx(100 / 3)
    accuracies = [seed["probe_acc1"] for seed in cell["detail"]["seeds"]]
    assert cell["metrics"]["probe_acc1.mean"] == pytest.approx(np.mean(accuracies))
    assert "probe acc" in first.stdout and "± std" in first.stdout and "chance" in first.stdout
    again = run_bench(tmp_path, *arguments)
    assert again.returncode == 0 and "cached" in again.stderr


def test_probe_acquisition_refuses_data_without_a_test_split_before_extracting(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "run", "probe-acquisition", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random")
    assert done.returncode == 2 and "needs train, val and test" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "embeddings").exists()
    bad = run_bench(tmp_path, "run", "probe-acquisition", "--mask", "0.3")
    assert bad.returncode == 2 and "0.95" in bad.stderr


def test_probe_acquisition_on_real_camera_photos_by_make(tmp_path: Path, shared_data: Path) -> None:
    root = shared_data / "cameras"
    done = run_bench(tmp_path, "run", "probe-acquisition", "--dataset", "cameras", "--root", str(root), "--trials", "10", timeout=600)
    assert done.returncode == 0, done.stderr
    control = next(line for line in done.stdout.splitlines() if "effnet/lite0.random" in line)
    assert "*" not in control  # the random-weight control names the largest make for every photo: no trace
    cells = {json.loads(path.read_text())["encoder"]: json.loads(path.read_text())
             for path in (tmp_path / "reports" / "results" / "probe-acquisition").glob("**/*.json")}
    for found in cells.values():
        for name, (low, high) in found["intervals"].items():
            assert low <= found["metrics"][name] <= high
    cell = cells["effnet/lite0.in1k"]
    makes = cell["detail"]["classes"]
    assert "Canon" in makes and "Apple" in makes and makes == sorted(makes)
    assert cell["metrics"]["chance"] == pytest.approx(100 / len(makes))
    assert sum(cell["detail"]["test_counts"]) == cell["detail"]["test_rows"] > 20
    assert 0.0 <= cell["metrics"]["probe_acc1"] <= 100.0
    assert cell["detail"]["processing"] == "mask95" and "probe acc" in done.stdout
