"""`--engine ray` on a local Ray cluster: the same rows and vectors as the local engine, and a
worker killed mid-run is retried without storing any key twice, on an S3 bucket as on a folder."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from bench import data, encoders, extraction
from bench.extraction import distributed
from bench.extraction.engine import drive
from bench.extraction.summary import ExtractionSummary
from bench.extraction.plan import make_plan
from bench.extraction.settings import ExtractionSettings
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


def test_ray_engine_survives_a_killed_worker_writes_its_fragments_to_s3_and_matches_the_local_engine(
        s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One Ray run on an S3 bucket (moto's server on localhost) with a worker killed mid-run: every
    key once in the bucket, and the vectors and kNN numbers of the local engine on a folder."""
    uri = f"s3://bench/{uuid.uuid4().hex}"
    for name, value in s3.items():
        monkeypatch.setenv(name, value)  # this process reads the bucket too
    remote = Store(uri)
    process = subprocess.Popen(bench_command(tmp_path / "ray", *EXTRACT, "--engine", "ray", "--commit-seconds", "0"), cwd=PROJECT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "BENCH_EMBEDDINGS_URI": uri})
    killed = False
    while process.poll() is None:  # the run ends on its own, killed worker or not
        stored = remote.count("demo-mini", ENCODER) if remote.has_table("demo-mini", ENCODER) else 0
        if not killed and stored > 0 and _worker_pids():
            os.kill(_worker_pids()[0], signal.SIGKILL)  # a worker dies mid-run; Ray restarts it and retries its batch
            killed = True
        time.sleep(0.2)
    _, errors = process.communicate()
    assert process.returncode == 0, errors[-2000:]
    assert killed, "the run ended before a worker could be killed"
    assert not (tmp_path / "ray" / "embeddings").exists()  # the fragments went to the bucket

    assert run_bench(tmp_path / "local", *EXTRACT).returncode == 0
    local = Store(tmp_path / "local" / "embeddings")
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


def test_staged_layout_matches_the_local_engine(tmp_path: Path) -> None:
    """The layout GPU clusters get (prepare tasks feeding one actor pool per encoder, each writing
    its own fragments), run here with CPU actors."""
    import dataclasses

    dataset = data.resolve("demo-mini")
    dataset = dataclasses.replace(dataset, listing=data.Listing([r for r in dataset.listing.records if r.split == "val"][:10]))
    specs = [encoders.get(ENCODER), encoders.get("effnet/lite0.in1k")]
    staged, local = Store(tmp_path / "staged"), Store(tmp_path / "local")
    plan = make_plan(dataset, specs, PROCESSINGS, staged, splits=("val",))
    summaries = {spec.name: ExtractionSummary(plan.dataset, spec.name) for spec in specs}
    settings = ExtractionSettings(device="cpu", batch_size=4, commit_seconds=0)
    drive(plan, distributed.RayEngine(plan, settings, staged, staged=True), staged, settings, summaries, Console(quiet=True))
    extraction.extract(dataset, specs, PROCESSINGS, local, splits=("val",), console=Console(quiet=True))
    for spec in specs:
        assert summaries[spec.name].rows_written == 10 * len(PROCESSINGS)
        state = staged.key_state(dataset.key, spec.name)
        assert len(state.merge_keys) == 10 * len(PROCESSINGS) and state.duplicates() == 0
        mine, theirs = (store.split_vectors(dataset.key, spec.name, "val", PROCESSINGS) for store in (staged, local))
        assert list(mine.image_ids) == list(theirs.image_ids)
        assert max(float(np.abs(mine.vectors[p] - theirs.vectors[p]).max()) for p in PROCESSINGS) <= 1e-5


@pytest.mark.parametrize("nodes, expected", [([2], (1, 2)), ([12], (2, 6)), ([64], (8, 8)), ([4, 64], (4, 9)), ([16, 16], (2, 16)), ([0.5], (1, 1))])
def test_cpu_actors_use_every_core_with_few_threads(nodes: list[float], expected: tuple[int, int]) -> None:
    threads, actors = distributed._cpu_actors(nodes)
    assert (threads, actors) == expected
    assert threads <= max(1, min(int(n) for n in nodes))  # every node can host an actor
    assert actors * threads <= max(1, sum(int(n) for n in nodes))  # no core is promised twice


def test_a_ray_address_where_nothing_answers_is_refused_at_once(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_bench(tmp_path, *EXTRACT, "--engine", "ray", "--ray-address", f"127.0.0.1:{port}")  # a hang ends at run_bench's timeout
    assert done.returncode == 2
    assert f"--ray-address 127.0.0.1:{port}: nothing answers there" in done.stderr and "Traceback" not in done.stderr
    assert not Store(tmp_path / "embeddings").has_table("demo-mini", ENCODER)
