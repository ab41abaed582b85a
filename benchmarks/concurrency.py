#!/usr/bin/env python
"""Concurrent runs on one home: two processes started together must both succeed and leave
every key in the store exactly once.

Run from the project root:

    python benchmarks/concurrency.py                # 10 x two `extract` at once, then 10 x two `run knn-influence` at once
    python benchmarks/concurrency.py --repeats 1 --quick

Each repetition uses a fresh home; `extract` commits as often as it can (--commit-seconds 0) so
the two writers interleave as much as possible. After both exit, the table must hold exactly
the expected rows, each key once. The last line counts the repetitions that held.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench.arguments import positive_int  # noqa: E402

ENCODER = "effnet/lite0.random"
DATASET = "demo-mini"


def commands(kind: str, quick: bool) -> tuple[list[str], int]:
    """The bench arguments of one process of this kind, and the rows the table must end with."""
    if kind == "extract":
        splits = "val" if quick else "train,val"
        images = 22 if quick else 66
        return ["extract", "--dataset", DATASET, "--encoders", ENCODER, "--processings", "jpeg75_420,jpeg95_444",
                "--splits", splits, "--commit-seconds", "0", "--batch-size", "4"], images * 2
    return ["run", "knn-influence", "--dataset", DATASET, "--encoders", ENCODER, "--group", "sharpening", "--seeds", "1",
            "--batch-size", "8"], 66 * 3


def trial(home: Path, kind: str, quick: bool) -> tuple[bool, str]:
    """Two processes of `kind` at once on `home`: (held, what happened)."""
    from bench.store import Store

    arguments, expected = commands(kind, quick)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "bench", "--home", str(home), *arguments], cwd=PROJECT, env=environment,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(process.wait(), process.stderr.read() if process.stderr else "") for process in processes]
    seconds = time.perf_counter() - started
    codes = [code for code, _ in outcomes]
    store = Store(home / "embeddings")
    state = store.key_state(DATASET, ENCODER)
    rows, distinct = len(state.merge_keys), len(state.merge_keys) - state.duplicates()
    held = codes == [0, 0] and rows == distinct == expected
    detail = f"exit codes {codes}, {rows} rows, {distinct} distinct keys, {expected} expected, {seconds:.1f} s"
    if not held:
        detail += "".join(f"\n  stderr of process {n}: {text.strip()[-800:]}" for n, (code, text) in enumerate(outcomes) if code != 0)
    return held, detail


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/concurrency.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=10, help="repetitions of each kind (default: 10)")
    parser.add_argument("--kinds", default="extract,run", help="which pairs to start: extract, run or both (default: both)")
    parser.add_argument("--quick", action="store_true", help="extract the val split only")
    arguments = parser.parse_args(argv)
    failures = 0
    total = 0
    for kind in arguments.kinds.split(","):
        for repeat in range(arguments.repeats):
            with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as home:
                held, detail = trial(Path(home), kind, arguments.quick)
            total += 1
            failures += not held
            print(f"{kind:8s} {repeat + 1:2d}: {'held' if held else 'FAILED'} ({detail})", flush=True)
    print(f"{total - failures} of {total} repetitions left every key exactly once with both processes exiting 0")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
