#!/usr/bin/env python
"""Every printed number, before and after a change: two bench checkouts run one fixed script and are compared.

    python benchmarks/compare_checkouts.py --before /path/old-tree --after . --scratch /tmp/compare
    python benchmarks/compare_checkouts.py --before-outputs /tmp/compare/before --after . --scratch /tmp/compare
    python benchmarks/compare_checkouts.py --before /path/old-tree --scratch /tmp/compare --before-only

Each side runs `python -m bench ...` from inside its own checkout (so that checkout's `bench` package is
the one imported, checked with `python -c "import bench"`) in a home of its own (BENCH_HOME), on three
datasets: demo-mini, a small class-balanced subset of CIFAR-10 test images (symbolic links in the
scratch folder, the same folder for both sides; skipped when the images are absent) and paircams-sim;
with the shipped EfficientNet and its random control, and small resample counts. It then exports every
board (tasks and traces views; CSV, Markdown, JSON) and writes the report. The comparison:

  (a) every value, interval bound, p-value (raw and adjusted) and mark per (task, dataset, condition,
      encoder, metric) from the JSON exports: exactly equal;
  (b) the Markdown and CSV exports as text (unified diff; the homes' paths are replaced by a name, and
      lines holding a date or time are left out), and their numbers as multisets per dataset's boards
      (a change of wording or layout shows in the text and not in the numbers);
  (c) the numbers of each report page (HTML and Markdown; embedded images left out), as multisets;
  (d) the BEFORE home's stored cells read by the AFTER code (a copy of its results, so nothing in the
      saved home changes), against the BEFORE exports: every board at once (Markdown, as (b)) and one
      task at a time (JSON, as (a)), so a task whose old cells the new code refuses is named and the
      other tasks are still compared.

A run that one side refuses must be refused by the other with the same exit status. The summary table
prints dataset x check -> identical or the number of differences. Exit 1 when anything differs.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PYTHON = "/work/venv/bin/python"
ENCODERS = "effnet/lite0.in1k,effnet/lite0.random"
CIFAR = Path("/work/shared/data/cifar10-test")
SMALL = ["--bootstrap", "20", "--permutations", "19"]
PROBE = ["--seeds", "2", "--trials", "2", "--epochs", "5"]

# The fixed script: (dataset label, task, extra options). probe-acquisition runs wherever it is asked to;
# a dataset without camera labels must be refused the same way on both sides.
TASKS = [
    ("knn-influence", [*SMALL, "--seeds", "2"]),
    ("similarity", SMALL),
    ("masking", []),
    ("probe-processing", [*PROBE, *SMALL]),
    ("probe-acquisition", [*PROBE[2:], *SMALL]),
    ("mitigate", [*PROBE, *SMALL]),
]
# masking extracts six masked copies of every image: on the CIFAR subset that doubles the side's time.
DATASET_TASKS = {
    "demo-mini": [t for t in TASKS],
    "cifar10-subset": [t for t in TASKS if t[0] != "masking"],
    "paircams-sim": [("paircams", SMALL), ("probe-acquisition", [*PROBE[2:], *SMALL])],
}
EXPORTS = [(view, fmt) for view in ("tasks", "traces") for fmt in ("json", "csv", "markdown")]
SUFFIX = {"json": "json", "csv": "csv", "markdown": "md"}
# Lines that may differ between two runs of the same code: a date or a time of day.
VOLATILE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}")
NUMBER = re.compile(r"[-−+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
EMBEDDED = re.compile(r"data:[a-z]+/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=]+")


def dataset_args(name: str, subset: Path) -> list[str]:
    if name == "cifar10-subset":
        return ["--dataset", "imagefolder", "--root", str(subset)]
    return ["--dataset", name]


def make_subset(folder: Path, per_class: int) -> Path:
    """A class-balanced subset of CIFAR-10 test images as links: the first files of each class, sorted."""
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for class_dir in sorted(p for p in CIFAR.iterdir() if p.is_dir()):
        (partial / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            (partial / class_dir.name / image.name).symlink_to(image)
    partial.rename(folder)
    return folder


def bench(checkout: Path, home: Path, args: list[str], log: Path) -> tuple[int, str]:
    """Run `python -m bench ARGS` inside CHECKOUT with HOME; the output goes to LOG, the last line is returned."""
    env = dict(os.environ, BENCH_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONPATH="")
    started = time.monotonic()
    done = subprocess.run([PYTHON, "-m", "bench", *args], cwd=checkout, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write_text(f"$ python -m bench {' '.join(args)}\n{done.stdout}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    print(f"  [{time.monotonic() - started:6.1f} s] rc={done.returncode} bench {' '.join(args)}", flush=True)
    return done.returncode, lines[-1] if lines else ""


def imported_from(checkout: Path) -> str:
    done = subprocess.run([PYTHON, "-c", "import bench; print(bench.__file__)"], cwd=checkout,
                          env=dict(os.environ, PYTHONPATH=""), capture_output=True, text=True, check=True)
    where = done.stdout.strip()
    if not Path(where).resolve().is_relative_to(checkout.resolve()):
        sys.exit(f"{checkout}: `import bench` finds {where}, not this checkout's package")
    return where


def export_all(checkout: Path, home: Path, out: Path, logs: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    codes = {}
    for view, fmt in EXPORTS:
        name = f"{view}.{SUFFIX[fmt]}"
        codes[name], _ = bench(checkout, home, ["leaderboard", "--view", view, "--format", fmt,
                                                "--out", str(out / name)], logs / f"export-{name}.txt")
    return codes


def run_side(checkout: Path, out: Path, datasets: list[str], subset: Path) -> None:
    """Run the fixed script in CHECKOUT with OUT/home, then export the boards and write the report."""
    print(f"side {checkout} -> {out}", flush=True)
    where = imported_from(checkout)
    home, logs = out / "home", out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout,
                           capture_output=True, text=True).stdout.strip()
    runs = []
    for dataset in datasets:
        for task, options in DATASET_TASKS[dataset]:
            args = ["run", task, *dataset_args(dataset, subset), "--encoders", ENCODERS, *options]
            rc, last = bench(checkout, home, args, logs / f"run-{dataset}-{task}.txt")
            runs.append({"dataset": dataset, "task": task, "args": args, "rc": rc, "last_line": last})
    exports = export_all(checkout, home, out / "exports", logs)
    rc, _ = bench(checkout, home, ["report", "--name", "compare"], logs / "report.txt")
    shutil.rmtree(out / "report", ignore_errors=True)
    if (home / "reports" / "compare").is_dir():
        shutil.copytree(home / "reports" / "compare", out / "report")
    manifest = {"checkout": str(checkout), "bench": where, "commit": commit, "dirty": bool(dirty),
                "datasets": datasets, "subset": str(subset), "runs": runs, "exports": exports, "report_rc": rc}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


# ---------------------------------------------------------------- comparison


def same_number(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                             and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def board_numbers(export: Path) -> dict[tuple, object]:
    """(task, dataset, condition, encoder, metric, field) -> value, from a tasks-view JSON export
    (none when the export was not written)."""
    numbers = {}
    if not export.is_file():
        return numbers
    for board in json.loads(export.read_text())["boards"]:
        metric_of = {c["header"]: c.get("metric") or c["header"] for c in board.get("columns", [])}
        base = (board["task"], board["dataset"], board["condition"])
        for row in board["rows"]:
            for header, cell in row["values"].items():
                cell = cell if isinstance(cell, dict) else {"value": cell}
                for field in ("value", "low", "high", "p", "p_adjusted", "marked"):
                    if field in cell:
                        numbers[(*base, row["encoder"], metric_of.get(header, header), field)] = cell[field]
    return numbers


def leaves(node, path=()) -> dict[tuple, object]:
    """Every number and mark of a JSON document by path; list items keyed by their name when they have one."""
    found = {}
    if isinstance(node, dict):
        for key, value in node.items():
            found.update(leaves(value, (*path, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            label = i
            if isinstance(value, dict):
                label = next((value[k] for k in ("encoder", "name", "task") if isinstance(value.get(k), str)), i)
                if "dataset" in value and "condition" in value:
                    label = f"{value.get('task')}|{value['dataset']}|{value['condition']}"
            found.update(leaves(value, (*path, label)))
    elif isinstance(node, (int, float)):
        found[path] = node
    return found


def compare_maps(before: dict, after: dict, what: str) -> list[str]:
    problems = []
    for key in sorted(set(before) | set(after), key=str):
        if key not in after:
            problems.append(f"{what}: {key} only before ({before[key]!r})")
        elif key not in before:
            problems.append(f"{what}: {key} only after ({after[key]!r})")
        elif not same_number(before[key], after[key]):
            problems.append(f"{what}: {key}: before {before[key]!r}, after {after[key]!r}")
    return problems


def normalised_lines(path: Path, homes: dict[str, str]) -> list[str]:
    text = path.read_text(errors="replace") if path.is_file() else ""
    text = EMBEDDED.sub("", text)
    for home, name in homes.items():
        text = text.replace(home, name)
    return [line for line in text.splitlines() if not VOLATILE.search(line)]


TASKS_NAMED = re.compile(r"\b(knn-influence|similarity|masking|probe-processing|probe-acquisition|paircams|mitigate)\b")


def sections(lines: list[str], names: dict[str, str]) -> list[str]:
    """Per line, 'dataset/task' of the nearest line at or above it that names a dataset (and the task
    that line names, if any); 'all' before any."""
    current, found = "all", []
    for line in lines:
        named = dataset_of(line, names)
        if named != "all":
            task = TASKS_NAMED.search(line.replace("paircams-sim", ""))
            current = f"{named}/{task.group(1)}" if task else named
        found.append(current)
    return found


def text_diff(before: Path, after: Path, homes: dict[str, str], names: dict[str, str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(the unified diff to print, each changed line with the dataset whose board holds it)."""
    if not before.is_file() or not after.is_file():
        missing = f"{before.name}: missing {'before' if not before.is_file() else 'after'}"
        return [missing], [("all", missing)]
    old, new = normalised_lines(before, homes), normalised_lines(after, homes)
    shown = list(difflib.unified_diff(old, new, f"before/{before.name}", f"after/{after.name}", lineterm="", n=1))
    where_old, where_new = sections(old, names), sections(new, names)
    changed = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag != "equal":
            changed += [(where_old[i], "-" + old[i]) for i in range(i1, i2)]
            changed += [(where_new[j], "+" + new[j]) for j in range(j1, j2)]
    return shown, changed


def page_numbers(path: Path, homes: dict[str, str], names: dict[str, str]) -> collections.Counter:
    """The numbers of a page as a multiset, each with the dataset of the section it stands in."""
    lines = normalised_lines(path, homes)
    return collections.Counter((where, number.replace("−", "-"))
                               for line, where in zip(lines, sections(lines, names)) for number in NUMBER.findall(line))


def split_by_dataset(problems: list[tuple[str, str]], datasets: list[str]) -> dict[str, int]:
    """Count problems per dataset; those naming none go to 'all'."""
    counts = collections.Counter()
    for dataset, _ in problems:
        dataset = dataset.split("/")[0]
        counts[dataset if dataset in datasets else "all"] += 1
    return counts


def dataset_of(text: str, names: dict[str, str]) -> str:
    for needle, dataset in names.items():
        if needle in text:
            return dataset
    return "all"


def compare(before: Path, after: Path, datasets: list[str], reread: Path | None) -> int:
    homes = {str(before / "home"): "<HOME>", str(after / "home"): "<HOME>"}
    if reread is not None:
        homes[str(reread.parent / "home")] = "<HOME>"
    # The CIFAR subset is an imagefolder: its boards name that dataset.
    names = {"demo-mini": "demo-mini", "imagefolder": "cifar10-subset", "cifar10": "cifar10-subset",
             "paircams-sim": "paircams-sim"}
    found: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)

    manifests = [json.loads((side / "manifest.json").read_text()) for side in (before, after)]
    refusals = []
    runs_after = {(r["dataset"], r["task"]): r for r in manifests[1]["runs"]}
    for run in manifests[0]["runs"]:
        other = runs_after.get((run["dataset"], run["task"]))
        if other is None:
            refusals.append((run["dataset"], f"runs: {run['task']} not run after"))
        elif run["rc"] != other["rc"]:
            refusals.append((run["dataset"], f"runs: {run['task']} exit {run['rc']} before "
                                             f"({run['last_line']}), {other['rc']} after ({other['last_line']})"))
        elif run["rc"] != 0:
            print(f"note: {run['dataset']} {run['task']} refused on both sides: {run['last_line']}")
    found["runs"] = refusals

    def key_dataset(key) -> str:
        return dataset_of("|".join(map(str, key)), names)

    a = compare_maps(board_numbers(before / "exports/tasks.json"), board_numbers(after / "exports/tasks.json"),
                     "tasks.json")
    traces = compare_maps(*(leaves(json.loads(path.read_text())) if path.is_file() else {}
                            for path in (before / "exports/traces.json", after / "exports/traces.json")), "traces.json")
    found["(a) json values"] = [(dataset_of(p, names), p) for p in a + traces]

    b, b_full = [], []
    for name in ("tasks.csv", "tasks.md", "traces.csv", "traces.md"):
        shown, changed = text_diff(before / "exports" / name, after / "exports" / name, homes, names)
        b_full += shown
        b += changed
    found["(b) csv/md text"] = b
    lost, added = [], []
    for name in ("tasks.csv", "tasks.md", "traces.csv", "traces.md"):
        nx, ny = (page_numbers(side / "exports" / name, homes, names) for side in (before, after))
        for where, number in sorted(set(nx) | set(ny)):
            line = (where, f"{name} [{where}]: {number!r} appears {nx[where, number]} times before, {ny[where, number]} after")
            if nx[where, number] > ny[where, number]:
                lost.append(line)
            elif nx[where, number] < ny[where, number]:
                added.append(line)
    # A number printed before and not after is a change; one only after may be a new column.
    found["(b) csv/md numbers lost"] = lost
    found["(b) csv/md numbers added"] = added

    c = []
    pages = sorted({p.relative_to(side / "report") for side in (before, after) if (side / "report").is_dir()
                    for p in (side / "report").rglob("*") if p.suffix in (".html", ".md")})
    for page in pages:
        x, y = before / "report" / page, after / "report" / page
        if not x.is_file() or not y.is_file():
            c.append(("all", f"{page}: only {'after' if y.is_file() else 'before'} (report exit status: before "
                             f"{manifests[0]['report_rc']}, after {manifests[1]['report_rc']})"))
            continue
        nx, ny = page_numbers(x, homes, names), page_numbers(y, homes, names)
        for where, number in sorted(set(nx) | set(ny)):
            if nx[where, number] != ny[where, number]:
                c.append((where, f"{page} [{where}]: {number!r} appears {nx[where, number]} times before, "
                                 f"{ny[where, number]} after"))
    found["(c) report numbers"] = c

    if reread is not None:
        refused = json.loads((reread / "refused.json").read_text()) if (reread / "refused.json").is_file() else {}
        old_numbers = {key: value for key, value in board_numbers(before / "exports/tasks.json").items() if key[0] not in refused}
        new_numbers = {}
        for part in sorted(reread.glob("task-*.json")):
            new_numbers.update(board_numbers(part))
        d = compare_maps(old_numbers, new_numbers, "old cells, after code")
        found["(d) old cells read after"] = [(dataset_of(p, names), p) for p in d]
        found["(d) old cells read after"] += [("all", f"leaderboard --task {task} refuses the old cells: {line}")
                                               for task, line in refused.items()]
        if (reread / "tasks.md").is_file():
            found["(d) old cells read after"] += text_diff(before / "exports/tasks.md", reread / "tasks.md", homes, names)[1]
        else:
            found["(d) old cells read after"].append(("all", "leaderboard (every task) wrote no export: see its log"))

    for check, problems in found.items():
        if problems:
            print(f"\n== {check}: {len(problems)} difference(s)")
            shown = b_full if check == "(b) csv/md text" else [p for _, p in problems]
            for line in shown[:400]:
                print("  " + line)
            if len(shown) > 400:
                print(f"  ... {len(shown) - 400} more")

    columns = [*datasets, "all"]
    print("\nsummary (dataset x check; 'all' = a difference naming no one dataset)")
    print(f"{'check':30}" + "".join(f"{c:>17}" for c in columns))
    total = 0
    for check, problems in found.items():
        counts = split_by_dataset(problems, datasets)
        total += len(problems)
        cells = ["identical" if counts[c] == 0 else f"{counts[c]} differences" for c in columns]
        print(f"{check:30}" + "".join(f"{c:>17}" for c in cells))
    print(f"\nignored in (b)-(d): lines matching {VOLATILE.pattern!r} (dates, times); the homes' paths "
          "replaced by <HOME>; in (c) embedded data: URIs")
    return 1 if total else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the BEFORE checkout (a bench source tree)")
    parser.add_argument("--after", type=Path, help="the AFTER checkout")
    parser.add_argument("--scratch", type=Path, required=True, help="scratch folder for homes and outputs")
    parser.add_argument("--before-outputs", type=Path, help="reuse a saved BEFORE side instead of running it")
    parser.add_argument("--before-only", action="store_true", help="run and save the BEFORE side, then stop")
    parser.add_argument("--after-outputs", type=Path, help="reuse a saved AFTER side (its --before-only run) instead of running it")
    parser.add_argument("--subset", type=Path, help="the CIFAR-10 subset folder (default: SCRATCH/data/cifar10-N-per-class); "
                        "both sides must read the same folder, as its path is part of the dataset's identity")
    parser.add_argument("--per-class", type=int, default=8, help="CIFAR-10 images per class (default: 8)")
    parser.add_argument("--seed-embeddings", action="store_true",
                        help="start the AFTER home with a copy of the BEFORE home's embeddings (skips "
                             "extraction when the fingerprint is unchanged; the vectors are then not compared)")
    opts = parser.parse_args()
    for given in (opts.before_outputs, opts.after_outputs):
        if given is not None and not (given / "manifest.json").is_file():
            parser.error(f"{given} holds no saved side (no manifest.json)")
    for given in (opts.before, opts.after):
        if given is not None and not (given / "bench" / "__init__.py").is_file():
            parser.error(f"{given} is not a bench checkout (no bench/__init__.py)")
    scratch = opts.scratch.resolve()
    scratch.mkdir(parents=True, exist_ok=True)

    if opts.before_outputs:
        before = opts.before_outputs.resolve()
        manifest = json.loads((before / "manifest.json").read_text())
        datasets, subset = manifest["datasets"], Path(manifest["subset"])
        if "cifar10-subset" in datasets and not subset.is_dir():
            make_subset(subset, opts.per_class)
    else:
        if opts.before is None:
            parser.error("--before or --before-outputs is needed")
        datasets = ["demo-mini", "cifar10-subset", "paircams-sim"]
        subset = (opts.subset or scratch / "data" / f"cifar10-{opts.per_class}-per-class").resolve()
        if CIFAR.is_dir():
            make_subset(subset, opts.per_class)
        else:
            print(f"skipping the CIFAR-10 subset: {CIFAR} is absent")
            datasets.remove("cifar10-subset")
        before = scratch / "before"
        run_side(opts.before.resolve(), before, datasets, subset)
    if opts.before_only:
        return 0
    if opts.after is None:
        parser.error("--after is needed unless --before-only")

    if opts.after_outputs:
        after = opts.after_outputs.resolve()
        ran = json.loads((after / "manifest.json").read_text())
        if ran["subset"] != str(subset) or ran["datasets"] != datasets:
            sys.exit(f"{after}: ran on {ran['datasets']} with the subset {ran['subset']}, not {datasets} with {subset}")
    else:
        after = scratch / "after"
        if opts.seed_embeddings and not (after / "home" / "embeddings").exists():
            shutil.copytree(before / "home" / "embeddings", after / "home" / "embeddings")
        run_side(opts.after.resolve(), after, datasets, subset)

    # (d): a copy of the BEFORE results, so the saved home stays as it was, read by the AFTER code.
    old = scratch / "before-cells-read-after"
    shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(before / "home" / "reports" / "results", old / "home" / "reports" / "results")
    reread = old / "exports"
    reread.mkdir(parents=True)
    for fmt in ("json", "csv", "markdown"):
        bench(opts.after.resolve(), old / "home", ["leaderboard", "--format", fmt, "--out",
                                                   str(reread / f"tasks.{SUFFIX[fmt]}")], old / f"log-{fmt}.txt")
    # One task at a time as well: a task whose old cells the new code refuses leaves the others readable.
    refused = {}
    for task in sorted({board["task"] for board in json.loads((before / "exports/tasks.json").read_text())["boards"]}):
        rc, last = bench(opts.after.resolve(), old / "home", ["leaderboard", "--task", task, "--format", "json", "--out",
                                                              str(reread / f"task-{task}.json")], old / f"log-{task}.txt")
        if rc != 0:
            refused[task] = last
    (reread / "refused.json").write_text(json.dumps(refused, indent=2))
    return compare(before, after, datasets, reread)


if __name__ == "__main__":
    sys.exit(main())
