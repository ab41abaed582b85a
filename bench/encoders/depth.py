"""Encoders embedded at an intermediate block: `NAME@blockN` names, their specs, and the one trunk
pass that every depth of an encoder reads.

`NAME@blockN` is NAME's image through its first N blocks, read from the model library's own
intermediate outputs (timm `forward_intermediates`; for open_clip, the timm trunk or the vision
transformer's `forward_intermediates`), then global-average pooled over the spatial positions of
the block's feature map (a ViT's patch tokens; class and register tokens left out). Each depth is
an encoder of its own: its own spec, fingerprint, table and result cells, so depths never mix.
Torch loads only when a depth is named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from bench.encoders.spec import EncoderSpec
from bench.naming import DEPTH_MARK, split_depth
from bench.registry import UnknownNameError

MARK = DEPTH_MARK
EVERY = "blocks"  # `NAME@blocks`: every block of NAME, in order
_DEPTH = re.compile(r"block([0-9]+)")
NAMING = (f"NAME{MARK}blockN embeds NAME at the output of its N-th block (global average pool of the block's feature map; "
          f"a table and result cells of its own); NAME{MARK}{EVERY} names every block. An unknown N lists the valid ones.")


@dataclass(frozen=True)
class Block:
    """One depth of an encoder: the module whose output it reads and that output's channel count."""

    module: str
    dim: int
    positions: str  # what the pooling averages over


split = split_depth  # `base@suffix` -> (base, suffix); a name without the mark -> (name, None)


def is_depth(name: str) -> bool:
    return MARK in name


def names(base: EncoderSpec, suffix: str) -> tuple[str, ...]:
    """The encoder names that `base@suffix` stands for: every block for `blocks`, else the one depth
    (checked: a depth the model does not have fails with the valid ones)."""
    if suffix == EVERY:
        return tuple(f"{base.name}{MARK}block{depth}" for depth in range(1, len(blocks(base)) + 1))
    return (at(base, suffix).name,)


def at(base: EncoderSpec, suffix: str) -> EncoderSpec:
    """The spec of `base` embedded at the depth `suffix` names (`block3`)."""
    found = _DEPTH.fullmatch(suffix)
    known = blocks(base)
    valid = f"{base.name} has {len(known)} blocks: {MARK}block1 to {MARK}block{len(known)} (or {MARK}{EVERY} for all)"
    if found is None:
        raise UnknownNameError(f"unknown depth {suffix!r} in {base.name}{MARK}{suffix}: depths are written {MARK}blockN; {valid}.")
    depth = int(found.group(1))
    if not 1 <= depth <= len(known):
        raise UnknownNameError(f"unknown depth {MARK}{suffix} of {base.name}: {valid}.")
    block = known[depth - 1]
    return replace(
        base, name=f"{base.name}{MARK}block{depth}", block=depth, embed_dim=block.dim,
        pooling=f"global average pool of {block.module}'s output over {block.positions} (block {depth} of {len(known)})",
        source=f"{base.source}, at block {depth} of {len(known)}",
    )


@lru_cache(maxsize=None)
def blocks(base: EncoderSpec) -> tuple[Block, ...]:
    """The blocks of the base encoder, measured on its architecture on the meta device (no memory,
    no weights); an architecture without intermediate outputs bench can read is refused."""
    import torch

    from bench.encoders import loaders, trunk

    with torch.device("meta"):
        read = trunk.reader(loaders.architecture(base), base.name)
        outputs = read(torch.empty(1, 3, base.input_size, base.input_size))
    return tuple(Block(module, int(output.shape[1]), read.positions) for module, output in zip(read.modules, outputs))
