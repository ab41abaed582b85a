"""What must match for two vectors in one table to be comparable."""

from __future__ import annotations

from typing import Any

from bench import encoders, processing
from bench.encoders.preprocess import paper_preprocess
from bench.encoders.spec import EncoderSpec
from bench.runtime import package_versions

FINGERPRINT_VERSION = 3  # 2: the dataset's identity and precision recorded; 3: rows record their source stamp


def fingerprint(spec: EncoderSpec, precision: str = "fp32", dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Encoder spec, weights identity, preprocessing, processing seed, forward-pass precision,
    the versions of the packages that change pixels or activations, and which data the rows
    come from (name, folder, listing digest, whether Exif orientation is applied)."""
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        # a local checkpoint counts by its checksum (under "weights"), not by the path it was read from
        "encoder": {key: value for key, value in spec.describe().items() if key != "source" and not (key == "weights" and spec.weights)},
        "weights": encoders.weights_identity(spec),
        "preprocess": paper_preprocess(spec).describe(),
        "processing_seed": processing.SEED,
        "precision": precision,
        "dtype": "float32",
        "packages": package_versions(),
        "dataset": dataset,
    }
