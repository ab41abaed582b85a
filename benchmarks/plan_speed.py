#!/usr/bin/env python
"""How long `--plan` takes for the paper's encoders, offline, against a floor measured in the
same run.

Run from the project root:

    python benchmarks/plan_speed.py               # 3 rounds, knn-influence, --encoders paper
    python benchmarks/plan_speed.py --rounds 5 --encoders offline

Each round runs, as fresh processes with the network closed (HF_HUB_OFFLINE=1) and an empty
home: the floor, `python -m bench list encoders --set ENCODERS` (start-up, the encoder list and
its weights' cache checks), then the plan, `python -m bench run TASK --encoders ENCODERS --plan`,
first with no counts kept on this machine (a cold cache folder: the catalog's shipped counts, or
counting) and then with the counts the first plan kept. The two alternate, so a burst of load
on a shared machine hits both. Printed: the median wall and CPU seconds of each and the plan's
ratio to the floor. CPU seconds (user + system of the process) move less with other load than
wall time does; the goal is a plan under 30 s of wall time on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 30.0


def timed(command: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `python -m bench COMMAND`; a failure stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench", *command], cwd=PROJECT, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"`python -m bench {' '.join(command)}` failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of floor and plans (default: 3)")
    parser.add_argument("--task", default="knn-influence", help="the task to plan (default: knn-influence)")
    parser.add_argument("--encoders", default="paper", help="an encoder set (default: paper, the 47)")
    arguments = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {"floor": [], "plan, cold cache": [], "plan, kept counts": []}
    with tempfile.TemporaryDirectory(prefix="plan-speed-") as scratch:
        for round_ in range(arguments.rounds):
            cache = Path(scratch) / f"cache-{round_}"
            environment = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(cache), "COLUMNS": "200"}
            home = ["--home", str(Path(scratch) / f"home-{round_}")]
            plan = [*home, "run", arguments.task, "--encoders", arguments.encoders, "--plan"]
            runs["floor"].append(timed([*home, "list", "encoders", "--set", arguments.encoders], environment))
            runs["plan, cold cache"].append(timed(plan, environment))
            runs["plan, kept counts"].append(timed(plan, environment))
            print(f"round {round_ + 1}: " + ", ".join(f"{name} {found[-1][0]:.1f} s" for name, found in runs.items()), flush=True)
    floor_wall = statistics.median(wall for wall, _ in runs["floor"])
    floor_cpu = statistics.median(cpu for _, cpu in runs["floor"])
    print(f"\nmedian of {arguments.rounds} rounds, `{arguments.task} --encoders {arguments.encoders}`:")
    for name, found in runs.items():
        wall, cpu = statistics.median(w for w, _ in found), statistics.median(c for _, c in found)
        print(f"  {name:18s} wall {wall:6.1f} s ({wall / floor_wall:4.1f}x the floor)   CPU {cpu:6.1f} s ({cpu / max(floor_cpu, 1e-9):4.1f}x)")
    cold = statistics.median(w for w, _ in runs["plan, cold cache"])
    print(f"goal: a plan under {GOAL_SECONDS:g} s of wall time on an idle machine; this run: {cold:.1f} s "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
