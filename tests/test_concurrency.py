"""Two bench processes on one home at once: both succeed and every key is stored exactly once
(benchmarks/concurrency.py repeats this ten times)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT


def test_two_extracts_and_two_runs_at_once_leave_every_key_once() -> None:
    done = subprocess.run(
        [sys.executable, str(PROJECT / "benchmarks" / "concurrency.py"), "--repeats", "1", "--quick"],
        cwd=PROJECT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 of 2 repetitions left every key exactly once" in done.stdout
