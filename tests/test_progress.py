"""bench.progress: a bar on a terminal; timed lines and a last line with the totals in a log."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from bench.progress import Stage, clock, log_interval
from tests.conftest import PROJECT


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def test_a_log_gets_a_line_per_interval_with_rate_and_time_left_and_a_last_line_with_totals() -> None:
    out, now = io.StringIO(), Clock()
    console = Console(file=out, width=200)
    assert not console.is_terminal
    with Stage(console, "extract demo x a", 100, unit="images", interval=10, now=now) as stage:
        for _ in range(100):
            now.seconds += 0.5  # 2 images/s: a line every 20 images
            stage.update(advance=1)
    lines = out.getvalue().splitlines()

    assert lines[0] == "extract demo x a: 100 images to do"
    assert lines[1] == "extract demo x a: 20/100 images (20%), 2.0 img/s, 0:00:10 elapsed, about 0:00:40 left"
    assert len(lines) == 1 + 4 + 1  # start, at 20, 40, 60, 80 (none at 100: the last line says it), end
    assert lines[-1] == "extract demo x a: finished 100/100 images after 0:00:50, 2.0 img/s"


def test_a_stage_that_stops_says_how_far_it_got_and_its_note() -> None:
    out, now = io.StringIO(), Clock()
    try:
        with Stage(Console(file=out), "probe e: search", 31, unit="trials", note=lambda: "best val 40.00%", interval=0, now=now) as stage:
            now.seconds = 3
            stage.update(completed=3, description="probe e: still searching")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    lines = out.getvalue().splitlines()
    assert lines[1] == "probe e: still searching: 3/31 trials (10%), 1.0 trials/s, 0:00:03 elapsed, about 0:00:28 left, best val 40.00%"
    assert lines[-1] == "probe e: still searching: stopped at 3/31 trials after 0:00:03, 1.0 trials/s, best val 40.00%"


def test_a_terminal_gets_the_bar_and_no_log_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with Stage(console, "fetching flickrexif", 4, unit="photos", interval=0) as stage:
        stage.update(advance=4)
    text = out.getvalue()
    assert "4/4" in text and "img/s" in text and "to do" not in text and "finished" not in text


def test_interval_and_clock(monkeypatch) -> None:
    monkeypatch.setenv("BENCH_PROGRESS_SECONDS", "2.5")
    assert log_interval() == 2.5
    monkeypatch.setenv("BENCH_PROGRESS_SECONDS", "soon")
    assert log_interval() == 10.0
    assert clock(3725.4) == "1:02:05"


def test_an_extraction_with_its_output_in_a_file_leaves_progress_lines(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCH_PROGRESS_SECONDS": "0"}
    with open(log, "w") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "bench", "--home", str(tmp_path), "extract", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random",
             "--processings", "jpeg75_420", "--splits", "val"],
            stdout=handle, stderr=subprocess.STDOUT, cwd=PROJECT, env=environment, timeout=300,
        )
    text = log.read_text()
    assert done.returncode == 0, text
    assert "images to do" in text and "img/s" in text and "left" in text, text
    assert "extract demo-mini x effnet/lite0.random: finished " in text, text
