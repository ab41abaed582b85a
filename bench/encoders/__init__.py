"""Encoders: the spec registry and the loaders that turn a spec into a model + preprocessing.

`load` and `weights_identity` import torch on first use, so listing specs stays fast.
"""

from __future__ import annotations

from typing import Any

from bench.encoders.catalog import ENCODERS, SETS, expand, get
from bench.encoders.spec import EncoderSet, EncoderSpec, WeightsUnavailableError

__all__ = ["ENCODERS", "SETS", "EncoderSet", "EncoderSpec", "WeightsUnavailableError", "expand", "get", "load", "weights_identity"]


def __getattr__(name: str) -> Any:
    if name in ("load", "weights_identity", "LoadedEncoder", "architecture", "available_offline"):
        from bench.encoders import loaders

        return getattr(loaders, name)
    raise AttributeError(f"module 'bench.encoders' has no attribute {name!r}")
