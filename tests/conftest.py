"""Shared fixtures: offline hub, the real-data folder, running the CLI in a subprocess, one-thread search."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a skip that says why the test cannot run."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test images not found at {SHARED_DATA} (the shared data folder sits beside the project)")
    return SHARED_DATA


def bench_command(home: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "bench", "--home", str(home), *arguments]


def run_bench(home: Path, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m bench` as a user would, capturing its output."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
    return subprocess.run(bench_command(home, *arguments), capture_output=True, text=True, timeout=timeout, env=environment, cwd=PROJECT)


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """The matrices are tiny: one thread keeps torch and FAISS from spin-waiting on shared, busy cores."""
    import torch

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    faiss_threads = None
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        faiss_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    if faiss_threads is not None:
        import faiss

        faiss.omp_set_num_threads(faiss_threads)
