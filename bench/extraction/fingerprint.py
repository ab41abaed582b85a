"""What must match for two vectors in one table to be comparable.

Computing it imports no model library: the weights are named by bench.encoders.weights, the
package versions come from the installed distributions' metadata, and the preprocessing is
described from the spec in the words torchvision's transforms print for themselves (a test
holds the two equal for every catalogued encoder). So deciding that a stored cell is current
costs no torch import."""

from __future__ import annotations

from typing import Any

from bench import processing
from bench.encoders.spec import EncoderSpec
from bench.encoders.weights import weights_identity
from bench.runtime import package_versions

FINGERPRINT_VERSION = 3  # 2: the dataset's identity and precision recorded; 3: rows record their source stamp
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")  # bench.encoders.preprocess's modes, by torchvision's names


def preprocess_description(spec: EncoderSpec) -> str:
    """`bench.encoders.preprocess.paper_preprocess(spec).describe()`, without building it: the
    shorter side resized to the input size, a centre crop, then to a tensor normalised by the
    spec's mean and std."""
    if spec.interpolation not in INTERPOLATIONS:
        raise KeyError(spec.interpolation)
    size = spec.input_size
    geometry = (f"Resize(size={size}, interpolation={spec.interpolation}, max_size=None, antialias=True)",
                f"CenterCrop(size={(int(size), int(size))})")
    tensorize = ("ToTensor()", f"Normalize(mean={spec.mean}, std={spec.std})")
    return f"paper: {_composed(geometry)} -> {_composed(tensorize)}"


def _composed(steps: tuple[str, ...]) -> str:
    return "Compose(" + "".join(f"\n    {step}" for step in steps) + "\n)"


def fingerprint(spec: EncoderSpec, precision: str = "fp32", dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Encoder spec, weights identity, preprocessing, processing seed, forward-pass precision,
    the versions of the packages that change pixels or activations, and which data the rows
    come from (name, folder, listing digest, whether Exif orientation is applied)."""
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        # a local checkpoint counts by its checksum (under "weights"), not by the path it was read from
        "encoder": {key: value for key, value in spec.describe().items() if key != "source" and not (key == "weights" and spec.weights)},
        "weights": weights_identity(spec),
        "preprocess": preprocess_description(spec),
        "processing_seed": processing.SEED,
        "precision": precision,
        "dtype": "float32",
        "packages": package_versions(),
        "dataset": dataset,
    }
