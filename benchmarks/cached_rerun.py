#!/usr/bin/env python
"""The cached rerun: `python -m bench run knn-influence` again once its cells are computed.

Run from the project root:

    python benchmarks/cached_rerun.py --home /tmp/bench-home   # computes the default run's cells first if the home lacks them
    python benchmarks/cached_rerun.py --home DIR --exact        # also the rerun without the tables' state records

Every cell is current, so the rerun only decides that (dataset listing, fingerprints, the tables'
state records, the stored cells) and prints the boards. Measured against floors taken in the same
run, alternating command by command in every round so that load on the machine hits them alike:
`python -c pass` (the interpreter) and `python -m bench --version` (bench's start-up: its imports
and the parser). Printed: each command's median and fastest wall time and its median CPU time (user +
system, the wall time it would take on an idle core), the rerun's ratios to each floor, and the modules the rerun imported among torch, LanceDB and pyarrow (none is the goal).
With --exact, the rerun with the records removed first (LanceDB opened to read each table's id).
Bytecode is cached in a temporary folder (PYTHONPYCACHEPREFIX), as an installed package has it,
without writing into the checkout. The goal, under 1 s on an idle machine, is judged from the
fastest rerun; the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(PROJECT))

from bench.arguments import positive_int  # noqa: E402
from bench.table_state import STATE_FOLDER  # noqa: E402

GOAL_S = 1.0
HEAVY = ("torch", "torchvision", "lancedb", "lance", "pyarrow")
RERUN = ("-m", "bench", "run", "knn-influence")


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds on the clock
    cpu: float  # user + system seconds of the command and its children: what the wall time is on an idle core


def timed(command: list[str], environment: dict[str, str]) -> tuple[Timing, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=PROJECT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Timing(wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime), done


def cells(home: Path) -> int:
    return len(list((home / "reports" / "results" / "knn-influence").glob("**/*.json")))


def check_cached(done: subprocess.CompletedProcess[str], home: Path) -> None:
    """A rerun that computed anything is not the case measured here: stop and say why."""
    if done.returncode != 0:
        sys.exit(f"the rerun failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    served = done.stderr.count("cached:")
    if served != cells(home) or "stale" in done.stderr:
        sys.exit(f"the rerun served {served} of {cells(home)} cells from the cache:\n{done.stderr[-2000:]}")


def heavy_imports(environment: dict[str, str]) -> list[str]:
    """Which of HEAVY the rerun imports (python -X importtime names every module it loads)."""
    _, done = timed([sys.executable, "-X", "importtime", *RERUN], environment)
    loaded = set(re.findall(r"\|\s*([\w.]+)\s*$", done.stderr, flags=re.MULTILINE))
    return sorted(name for name in loaded if name in HEAVY)


def summary(name: str, times: list[Timing]) -> str:
    walls, cpus = [timing.wall for timing in times], [timing.cpu for timing in times]
    return (f"{name:<32} wall: median {statistics.median(walls):6.3f} s, fastest {min(walls):6.3f} s;  "
            f"CPU: median {statistics.median(cpus):6.3f} s  ({len(times)} runs)")


def median(times: list[Timing], part: str) -> float:
    return statistics.median(getattr(timing, part) for timing in times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="workspace holding (or to hold) the default run's cells")
    parser.add_argument("--rounds", type=positive_int, default=7, help="rounds; each runs every command once (default: 7)")
    parser.add_argument("--exact", action="store_true", help="also time the rerun with the tables' state records removed")
    arguments = parser.parse_args(argv)

    home = arguments.home.expanduser().resolve()
    bytecode = Path(tempfile.mkdtemp(prefix="bench-bytecode-"))
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    environment.update(BENCH_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONPYCACHEPREFIX=str(bytecode), COLUMNS="140")
    try:
        if cells(home) == 0:
            print(f"computing the default run's cells in {home} once (minutes) …", flush=True)
            _, done = timed([sys.executable, *RERUN], environment)
            if done.returncode != 0:
                sys.exit(f"the first run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -m bench --version": [sys.executable, "-m", "bench", "--version"],
            "cached rerun": [sys.executable, *RERUN],
        }
        if arguments.exact:
            commands["cached rerun, no state records"] = [sys.executable, *RERUN]
        for command in commands.values():  # warm-up: bytecode compiled and cached, files in the page cache
            timed(command, environment)
        times: dict[str, list[Timing]] = {name: [] for name in commands}
        for _ in range(arguments.rounds):
            for name, command in commands.items():
                if name.endswith("no state records"):
                    shutil.rmtree(home / "embeddings" / STATE_FOLDER, ignore_errors=True)
                seconds, done = timed(command, environment)
                if name.startswith("cached rerun"):
                    check_cached(done, home)
                times[name].append(seconds)
        heavy = heavy_imports(environment)
    finally:
        shutil.rmtree(bytecode, ignore_errors=True)

    print(f"home {home}: {cells(home)} cells; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name, measured in times.items():
        print(summary(name, measured))
    rerun = times["cached rerun"]
    interpreter, start_up = times["python -c pass"], times["python -m bench --version"]
    for part in ("wall", "cpu"):
        print(f"{part:>4}: cached rerun / bench start-up {median(rerun, part) / median(start_up, part):.2f}x "
              f"(its own work {median(rerun, part) - median(start_up, part):.3f} s), "
              f"/ interpreter {median(rerun, part) / median(interpreter, part):.1f}x"
              + (f", without state records / with {median(times['cached rerun, no state records'], part) / median(rerun, part):.1f}x"
                 if arguments.exact else ""))
    print(f"heavy modules the rerun imports: {', '.join(heavy) if heavy else 'none'} (of {', '.join(HEAVY)})")
    fastest = min(timing.wall for timing in rerun)
    met = fastest < GOAL_S and not heavy
    print(f"goal: cached rerun under {GOAL_S:.0f} s with none of them: {'met' if met else 'missed'} (fastest wall {fastest:.3f} s, "
          f"median CPU {median(rerun, 'cpu'):.3f} s)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
