#!/usr/bin/env python
"""Reading acquisition labels: bench.exif.read over a folder of photos against decoding them.

Run from the project root:

    python benchmarks/exif_read.py                       # ../shared/data/cameras
    python benchmarks/exif_read.py --root DIR_OF_PHOTOS

bench.exif.read parses the file's header only (Pillow opens lazily), so labelling a folder should
cost less than decoding it once. Baseline: a full decode of every photo (Image.open + load), the
least that any pixel-reading step pays. Printed: both wall times (best of --rounds, each round
reads every file once) and the ratio; the goal is a ratio below 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench import exif  # noqa: E402
from bench.arguments import positive_int  # noqa: E402

GOAL = 1.0


def best_of(rounds: int, step, paths: list[Path]) -> float:
    """The fastest of `rounds` passes of `step` over every path, in seconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for path in paths:
            step(path)
        times.append(time.perf_counter() - start)
    return min(times)


def decode(path: Path) -> None:
    with Image.open(path) as image:
        image.load()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PROJECT.parent / "shared" / "data" / "cameras", help="a folder of photos")
    parser.add_argument("--rounds", type=positive_int, default=3, help="passes over the folder per side (best counts)")
    options = parser.parse_args(argv)
    paths = sorted(path for path in options.root.rglob("*") if path.suffix.lower() in {".jpg", ".jpeg"})
    if not paths:
        parser.error(f"no JPEG files under {options.root}")
    labels = best_of(options.rounds, exif.read, paths)
    decoded = best_of(options.rounds, decode, paths)
    ratio = labels / decoded
    print(f"{len(paths)} photos under {options.root}")
    print(f"decode every photo (baseline): {decoded:.3f} s")
    print(f"bench.exif.read every photo:    {labels:.3f} s ({len(paths) / labels:.0f} photos/s)")
    print(f"ratio {ratio:.3f} (goal < {GOAL:g}): {'met' if ratio < GOAL else 'missed'}")
    return 0 if ratio < GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
