"""EncoderSpec: everything needed to rebuild an encoder and its preprocessing exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from bench.errors import BenchError

Family = Literal["cvl", "ssl", "sup"]
FAMILIES: tuple[str, ...] = ("cvl", "ssl", "sup")  # also the leaderboard's order
FAMILY_TITLES = {"cvl": "CVL (contrastive vision-language)", "ssl": "SSL (self-supervised)", "sup": "SUP (supervised)"}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


class WeightsUnavailableError(BenchError, RuntimeError):
    """The weights for a spec cannot be obtained here; the message says how to supply them."""


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder: `family/arch.tag` name, where its weights come from, and how it sees images."""

    name: str
    family: Family
    loader: str  # key of bench.encoders.loaders.LOADERS
    architecture: str  # the loader's architecture name (timm / open_clip model name)
    pretrained: str  # the loader's weights tag; "" for random init
    input_size: int
    embed_dim: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    pooling: str = "default"  # what the embedding is: the loader's standard image embedding
    source: str = ""  # human-readable origin of the weights
    init_seed: int = 0  # for random-init specs
    weights: str | None = None  # a local checkpoint file that replaces the pretrained tag
    url: str = ""  # checkpoint URL, for loaders that fetch a raw file
    options: tuple[tuple[str, object], ...] = ()  # extra constructor arguments (e.g. img_size)
    block: int = 0  # 0: the final embedding; N: the pooled output of the N-th block (`name@blockN`)

    def describe(self) -> dict[str, object]:
        """Plain dict for fingerprints and result provenance; `block` only where set, so tables
        of final embeddings made before depths existed still match."""
        described = asdict(self)
        if not self.block:
            del described["block"]
        return described


@dataclass(frozen=True)
class EncoderSet:
    """A named list of encoders, in order (e.g. the paper's 47), usable wherever encoders are named."""

    name: str
    description: str
    members: tuple[str, ...]  # encoder names, or names of other sets
