"""`--engine ray` on a local Ray cluster: the same rows and vectors as the local engine, and a
worker killed mid-run is retried without storing any key twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from bench.store import Store
from bench.tasks import knn_influence
from tests.conftest import PROJECT, bench_command, run_bench

pytest.importorskip("ray", reason="the Ray engine needs the ray extra (pip install -e '.[ray]')")

ENCODER = "effnet/lite0.random"
PROCESSINGS = ("jpeg95_444", "sharpen4")
EXTRACT = ("extract", "--dataset", "demo-mini", "--encoders", ENCODER, "--processings", ",".join(PROCESSINGS), "--batch-size", "4")
ROWS = 66 * len(PROCESSINGS)


def _worker_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", r"ray::MapWorker.*MapBatches\(Embed\)"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_ray_engine_survives_a_killed_worker_and_matches_the_local_engine(tmp_path: Path) -> None:
    ray_home, local_home = tmp_path / "ray", tmp_path / "local"
    process = subprocess.Popen(bench_command(ray_home, *EXTRACT, "--engine", "ray", "--commit-seconds", "0"), cwd=PROJECT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 300
    killed = False
    while process.poll() is None and time.monotonic() < deadline:
        store = Store(ray_home / "embeddings")
        stored = store.count("demo-mini", ENCODER) if store.has_table("demo-mini", ENCODER) else 0
        if not killed and stored > 0 and _worker_pids():
            os.kill(_worker_pids()[0], signal.SIGKILL)  # a worker dies mid-run; Ray restarts it and retries its batch
            killed = True
        time.sleep(0.2)
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors[-2000:]
    assert killed, "the run ended before a worker could be killed"

    assert run_bench(local_home, *EXTRACT).returncode == 0
    remote, local = Store(ray_home / "embeddings"), Store(local_home / "embeddings")
    state = remote.key_state("demo-mini", ENCODER)
    assert len(state.merge_keys) == ROWS and state.duplicates() == 0  # every key exactly once
    splits = {}
    for name, store in (("ray", remote), ("local", local)):
        splits[name] = [store.split_vectors("demo-mini", ENCODER, split, PROCESSINGS) for split in ("train", "val")]
    for mine, theirs in zip(splits["ray"], splits["local"]):
        assert list(mine.image_ids) == list(theirs.image_ids)
        assert max(float(np.abs(mine.vectors[p] - theirs.vectors[p]).max()) for p in PROCESSINGS) <= 1e-5
    outcomes = [knn_influence.run(*splits[name], PROCESSINGS, k=3, seeds=(0, 1)) for name in ("ray", "local")]
    assert outcomes[0].triples == outcomes[1].triples and outcomes[0].uniform == outcomes[1].uniform
