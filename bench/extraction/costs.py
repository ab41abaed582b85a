"""What one image's forward pass costs an architecture, on no machine in particular: its FLOPs and
parameters, counted on torch's meta device (no weights, no download, no arithmetic).

A count takes about a second per architecture, so counts are kept: the catalog's ship with the
package (bench/encoders/counted.py, valid for the library versions they were counted with), and
any other architecture, once counted, is kept in this machine's cache folder. A count is keyed
by what shapes the network (loader, architecture, input size, options, pooling, block) and the
versions of the libraries that build it, so encoders of one network share one count and an
upgraded library is counted again.

`python -m bench.extraction.costs` prints the catalog's counts as bench/encoders/counted.py.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from bench.encoders.spec import EncoderSpec

LIBRARIES = ("torch", "timm", "open_clip_torch", "torchvision")  # what builds the networks; a count holds for these versions
KEPT_FILE = "architecture-costs.json"


@dataclass(frozen=True)
class Cost:
    flops: float  # floating-point operations of one image's forward pass
    params: int  # parameters (weights), also what a float32 checkpoint of them holds
    source: str  # "shipped", "kept" or "counted": where the numbers came from


def shape_key(spec: EncoderSpec) -> str:
    """What shapes the network, as one string: encoders that agree here cost the same."""
    return json.dumps([spec.loader, spec.architecture, spec.input_size, [list(option) for option in spec.options],
                       spec.pooling, spec.block], default=str)


@lru_cache(maxsize=1)
def library_versions() -> str:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    return ", ".join(found)


def kept_path() -> Path:
    """This machine's cache folder for counts (the costs are of libraries, not of a home)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bench" / KEPT_FILE


def count(spec: EncoderSpec) -> tuple[float, int]:
    """(FLOPs, parameters) of one image's forward pass, counted on the architecture built without
    memory: torch's meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench import encoders

    with torch.device("meta"):
        model = encoders.architecture(spec).eval().requires_grad_(False)
    with FlopCounterMode(display=False) as counter:  # outside the device mode: each op dispatches once, not twice
        model(torch.empty(1, 3, spec.input_size, spec.input_size, device="meta"))
    return float(counter.get_total_flops()), sum(parameter.numel() for parameter in model.parameters())


class CostBook:
    """Counts by shape key: the shipped ones, then those kept on this machine, then a fresh count
    (kept for next time). Several encoders of one network are counted once."""

    def __init__(self, kept: Path | None = None, shipped: dict[str, tuple[float, int]] | None = None):
        self.kept = kept or kept_path()
        self.shipped = _shipped() if shipped is None else shipped
        self._read: dict[str, list[float]] | None = None

    def _kept(self) -> dict[str, list[float]]:
        if self._read is None:
            try:
                self._read = json.loads(self.kept.read_text(encoding="utf-8")).get(library_versions(), {})
            except (OSError, ValueError, AttributeError):
                self._read = {}  # none kept yet, or a file this version cannot read: count again
        return self._read

    def cost(self, spec: EncoderSpec) -> Cost:
        key = shape_key(spec)
        if key in self.shipped:
            flops, params = self.shipped[key]
            return Cost(float(flops), int(params), "shipped")
        if key in self._kept():
            flops, params = self._kept()[key]
            return Cost(float(flops), int(params), "kept")
        flops, params = count(spec)
        self._kept()[key] = [flops, params]
        self._keep()
        return Cost(flops, params, "counted")

    def _keep(self) -> None:
        """Write the kept counts (all versions' entries) atomically; a cache that cannot be written
        only costs a count next time."""
        try:
            self.kept.parent.mkdir(parents=True, exist_ok=True)
            try:
                every = json.loads(self.kept.read_text(encoding="utf-8"))
                every = every if isinstance(every, dict) else {}
            except (OSError, ValueError):
                every = {}
            every[library_versions()] = {**every.get(library_versions(), {}), **(self._read or {})}
            with tempfile.NamedTemporaryFile("w", dir=self.kept.parent, delete=False, suffix=".tmp", encoding="utf-8") as handle:
                json.dump(every, handle, sort_keys=True)
            os.replace(handle.name, self.kept)
        except OSError:
            pass


def _shipped() -> dict[str, tuple[float, int]]:
    from bench.encoders import counted

    return dict(counted.COSTS) if counted.COUNTED_WITH == library_versions() else {}


def render(specs: list[EncoderSpec]) -> str:
    """bench/encoders/counted.py for these encoders, counted here."""
    lines = [
        '"""FLOPs and parameters of one image\'s forward pass per catalog network, counted on the meta device',
        'by `python -m bench.extraction.costs` (bench/extraction/costs.py); used only with these library versions."""',
        "",
        f"COUNTED_WITH = {library_versions()!r}",
        "",
        "COSTS: dict[str, tuple[float, int]] = {",
    ]
    done: set[str] = set()
    for spec in specs:
        key = shape_key(spec)
        if key not in done:
            done.add(key)
            flops, params = count(spec)
            lines.append(f"    {key!r}: ({flops:.0f}, {params}),")
    return "\n".join([*lines, "}", ""])


if __name__ == "__main__":
    import logging

    from bench import encoders

    logging.disable(logging.WARNING)  # open_clip warns that it builds without weights, which is the point
    print(render([encoders.get(name) for name in encoders.expand(["paper", "offline"])]), end="")
