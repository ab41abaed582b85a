"""benchmarks/scale.py at its smallest runs every phase through bench's current interfaces.
Speed goals are the script's own business (a tiny shape misses them); this only keeps the
script in step with the code it measures."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import PROJECT


def test_scale_runs_every_phase_at_a_tiny_size() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/scale.py", "--fraction", "0.002", "--rounds", "1", "--memory-fractions", "0.002,0.004"],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )

    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr  # 1: a speed goal missed at this size, not a failure
    lines = done.stdout.splitlines()
    for phase in ("write", "read", "knn", "memory", "check"):
        assert any(line.startswith(phase) for line in lines), (phase, done.stdout)
    assert re.search(r"write +15972 rows in \d+ commits", done.stdout), done.stdout
    assert re.search(r"slope \(extra bytes per byte of one matrix\): copying -?[\d.]+, in place -?[\d.]+", done.stdout), done.stdout
    assert "33 of 33 accuracies equal to the literal brute force" in done.stdout
    assert re.search(r"goals met: \d of 5", done.stdout), done.stdout


def test_scale_refuses_memory_sizes_that_round_to_the_same_class_count() -> None:
    done = subprocess.run([sys.executable, "benchmarks/scale.py", "--phases", "memory", "--memory-fractions", "0.001,0.002"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2 and "both give 2 classes" in done.stderr, done.stderr
