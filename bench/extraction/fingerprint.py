"""What must match for two vectors in one table to be comparable."""

from __future__ import annotations

from typing import Any

from bench import encoders
from bench.encoders.preprocess import paper_preprocess
from bench.encoders.spec import EncoderSpec
from bench.runtime import package_versions

FINGERPRINT_VERSION = 1


def fingerprint(spec: EncoderSpec, seed: int, precision: str = "fp32") -> dict[str, Any]:
    """Encoder spec, weights identity, preprocessing, processing seed, precision and the versions
    of the packages that change pixels or activations."""
    found = {
        "fingerprint_version": FINGERPRINT_VERSION,
        "encoder": {key: value for key, value in spec.describe().items() if key != "source"},
        "weights": encoders.weights_identity(spec),
        "preprocess": paper_preprocess(spec).describe(),
        "processing_seed": seed,
        "dtype": "float32",
        "packages": package_versions(),
    }
    if precision != "fp32":
        found["precision"] = precision
    return found
