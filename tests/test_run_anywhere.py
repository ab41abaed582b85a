"""`python -m bench` from a folder that holds a folder named bench (the checkout itself, say), which
Python would otherwise import as an empty namespace package in place of the installed one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT


def bench_in(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bench", *arguments], cwd=folder, capture_output=True, text=True, timeout=120, env=environment)


@pytest.mark.parametrize("shadow", ["checkout", "empty folder"])
def test_a_folder_named_bench_beside_the_command_does_not_shadow_the_package(tmp_path: Path, shadow: str) -> None:
    if shadow == "checkout":
        (tmp_path / "bench").symlink_to(PROJECT, target_is_directory=True)
    else:
        (tmp_path / "bench").mkdir()

    version = bench_in(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("bench "), version.stderr
    assert "Traceback" not in version.stderr

    listed = bench_in(tmp_path, "list", "processings")
    assert listed.returncode == 0 and "jpeg75_420" in listed.stdout, listed.stderr
