"""Facts about the running machine and software: the device to compute on, the core count, the
package versions that change what an embedding is, and the allocator setting extraction needs."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib import metadata
from typing import TYPE_CHECKING

from bench.errors import UsageError

if TYPE_CHECKING:
    import torch

VERSIONED_PACKAGES = ("torch", "torchvision", "timm", "open_clip_torch", "pillow", "numpy")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions that change what an embedding is (decoder, resampling, model code)."""
    from PIL import features

    versions = {"python": platform.python_version(), "libjpeg": str(features.version("jpg"))}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return dict(versions)


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pick_device(requested: str = "auto") -> "torch.device":
    """auto: CUDA, then MPS, then the CPU. A named device that is absent or malformed is refused."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {requested!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {requested}: no CUDA GPU is visible to torch here; use --device cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 …)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise UsageError(f"--device {requested}: MPS is not available here; use --device cpu (or auto)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {requested}: bench runs on cpu, cuda or mps")
    return device


def keep_freed_memory() -> bool:
    """Let glibc reuse freed activation buffers instead of unmapping them after every batch.

    By default a CPU forward pass mmaps each large activation and unmaps it on free, so every
    batch pays page faults on fresh zeroed pages; on 2 cores that halves EfficientNet-Lite0's
    throughput (19 vs 45 img/s at batch 8). Linux with glibc only; elsewhere nothing changes."""
    import ctypes
    import ctypes.util

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    trim_threshold, mmap_threshold = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD in <malloc.h>
    return bool(libc.mallopt(mmap_threshold, 512 << 20)) and bool(libc.mallopt(trim_threshold, 1 << 30))
