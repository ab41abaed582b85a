"""A killed extraction loses nothing committed, and the rerun completes it without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from bench.store import Store
from tests.conftest import PROJECT, bench_command, run_bench

DATASET = "demo-mini"
ENCODER = "effnet/lite0.random"
PROCESSINGS = "jpeg75_420,jpeg95_444"
EXTRACT = ("extract", "--dataset", DATASET, "--encoder", ENCODER, "--processings", PROCESSINGS, "--batch-size", "4")
EXPECTED_ROWS = 11 * (4 + 2) * 2  # classes x (train + val) x processings


def _rows(home: Path) -> int:
    store = Store(home / "embeddings")
    return store.count(DATASET, ENCODER) if store.has_table(DATASET, ENCODER) else 0


def _vectors_by_key(home: Path) -> dict[tuple[str, str, str], np.ndarray]:
    table = Store(home / "embeddings").scan(DATASET, ENCODER, columns=["image_id", "split", "processing", "vector"])
    keys = zip(*(table.column(name).to_pylist() for name in ("image_id", "split", "processing")))
    vectors = table.column("vector").to_pylist()
    found: dict[tuple[str, str, str], np.ndarray] = {}
    for key, vector in zip(keys, vectors):
        assert key not in found, f"row {key} stored twice"
        found[key] = np.asarray(vector, dtype=np.float32)
    return found


def test_sigkill_midway_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    process = subprocess.Popen(
        bench_command(interrupted, *EXTRACT, "--commit-seconds", "0"),
        cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        while _rows(interrupted) < 8:  # the extraction ends on its own: no clock needed to stop waiting
            assert process.poll() is None, "extraction ended before it could be interrupted"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    partial = _rows(interrupted)
    assert 0 < partial < EXPECTED_ROWS, f"expected a partial table, found {partial} rows"

    resumed = run_bench(interrupted, *EXTRACT)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{partial} already stored" in resumed.stderr.replace("\n", " ")
    assert run_bench(reference, *EXTRACT).returncode == 0

    after_resume, uninterrupted = _vectors_by_key(interrupted), _vectors_by_key(reference)
    assert len(after_resume) == EXPECTED_ROWS
    assert set(after_resume) == set(uninterrupted)
    for key, vector in uninterrupted.items():
        np.testing.assert_allclose(after_resume[key], vector, rtol=1e-5, atol=1e-6, err_msg=str(key))
