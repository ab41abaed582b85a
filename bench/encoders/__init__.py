"""Encoders: the spec registry and the loaders that turn a spec into a model + preprocessing."""

from bench.encoders.catalog import ENCODERS, get
from bench.encoders.loaders import LoadedEncoder, WeightsUnavailableError, load, weights_identity
from bench.encoders.spec import EncoderSpec

__all__ = ["ENCODERS", "EncoderSpec", "LoadedEncoder", "WeightsUnavailableError", "get", "load", "weights_identity"]
