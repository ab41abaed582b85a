"""The network behind `NAME@blockN` encoders: every block's output read through the model
library's own intermediates, pooled, and computed once per batch for all depths of one encoder."""

from __future__ import annotations

import inspect
import weakref
from dataclasses import dataclass, replace
from typing import Callable

import torch

from bench.encoders.spec import EncoderSpec
from bench.naming import split_depth
from bench.registry import UnknownNameError


TOKENS = "its patch tokens (class and register tokens left out)"


@dataclass(frozen=True)
class Reader:
    """Every block's output (N, C, H, W) of one network, and the module each comes from."""

    modules: tuple[str, ...]
    call: Callable[[torch.Tensor], list[torch.Tensor]]
    positions: str = "the spatial positions of its feature map"  # what the global average pool averages

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.call(images)


def reader(network: torch.nn.Module, name: str) -> Reader:
    """How to read every block of a loader's network: timm's `forward_intermediates` (every block
    for EfficientNets and ViTs, every stage for ResNets and ConvNeXts), or, for open_clip, its timm
    trunk or its vision transformer's `forward_intermediates`."""
    visual = getattr(network, "visual", None)  # the open_clip image tower
    if visual is not None and hasattr(visual, "trunk"):
        return reader(visual.trunk, name)
    if visual is not None and hasattr(visual, "forward_intermediates") and hasattr(visual, "transformer"):
        count = len(visual.transformer.resblocks)
        return Reader(tuple(f"visual.transformer.resblocks.{i}" for i in range(count)), lambda x: visual.forward_intermediates(
            x, indices=list(range(count)), intermediates_only=True, output_fmt="NCHW")["image_intermediates"], TOKENS)
    method = getattr(network, "forward_intermediates", None)
    if method is None:
        raise UnknownNameError(
            f"{name}: its network ({type(visual if visual is not None else network).__name__}) offers no intermediate outputs bench can read; depths "
            "(@blockN) work for timm models with forward_intermediates and for open_clip towers with a timm trunk or a ViT")
    if "extra_blocks" in inspect.signature(method).parameters:  # EfficientNets: every block, not only stage ends
        count = len(network.blocks)
        return Reader(tuple(f"blocks.{i}" for i in range(count)), lambda x: method(
            x, indices=list(range(1, count + 1)), extra_blocks=True, intermediates_only=True))
    if isinstance(getattr(network, "blocks", None), (torch.nn.ModuleList, torch.nn.Sequential)):  # ViTs: patch tokens, no final norm
        count = len(network.blocks)
        return Reader(tuple(f"blocks.{i}" for i in range(count)), lambda x: method(
            x, indices=list(range(count)), intermediates_only=True, output_fmt="NCHW", norm=False), TOKENS)
    stages = tuple(info["module"] for info in network.feature_info)
    return Reader(stages, lambda x: method(x, indices=list(range(len(stages))), intermediates_only=True))


def network_spec(spec: EncoderSpec) -> EncoderSpec:
    """The spec that builds the network a depth reads: the base's loader fields only, the same for
    every depth of one encoder (and for a base whose weights --weights replaced)."""
    return replace(spec, name=split_depth(spec.name)[0], block=0, embed_dim=0, pooling="", source="")


class Trunk:
    """A base encoder's network, run once per distinct input batch: the depth embedders of one
    extraction pass it the same normalised pixels, so the first runs the network and the others
    read its pooled blocks (an input differing in any value runs it again). `passes` counts runs."""

    def __init__(self, network: torch.nn.Module, name: str):
        self.network = network
        self.read = reader(network, name)
        self.passes = 0
        self._input: torch.Tensor | None = None
        self._pooled: list[torch.Tensor] = []

    def pooled(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output averaged over its spatial positions: (N, C) per block."""
        last = self._input
        same = (last is not None and last.shape == images.shape and last.dtype == images.dtype
                and last.device == images.device and torch.equal(last, images))
        if not same:
            self._pooled = [output.mean(dim=(2, 3)) for output in self.read(images)]
            self._input = images
            self.passes += 1
        return self._pooled


class PooledBlock(torch.nn.Module):
    """forward(images) -> (N, C): block `depth` of a shared trunk, globally average-pooled."""

    def __init__(self, trunk: Trunk, depth: int):
        super().__init__()
        self.network = trunk.network  # a submodule, so .to(device, dtype) and .eval() reach it
        self.trunk = trunk
        self.depth = depth

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk.pooled(images)[self.depth - 1]


_SHARED: "weakref.WeakValueDictionary[EncoderSpec, Trunk]" = weakref.WeakValueDictionary()


def pooled_block(spec: EncoderSpec, build: Callable[[EncoderSpec], torch.nn.Module]) -> PooledBlock:
    """The model of a depth spec, its network made by `build`: the depths of one encoder loaded in
    one process share one network, and so one pass per batch, while any of them lives."""
    base = network_spec(spec)
    trunk = _SHARED.get(base)
    if trunk is None:
        trunk = Trunk(build(base), base.name)
        _SHARED[base] = trunk
    return PooledBlock(trunk, spec.block)
