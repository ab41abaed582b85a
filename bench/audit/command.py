"""`python -m bench audit`: list the dataset, read every file's header with a progress bar,
measure, keep the outcome under the home's results, and show or export the board."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from bench import data, results
from bench.audit import properties, stored
from bench.audit.measure import AuditOutcome, AuditSettings, measure
from bench.data import cameras
from bench.arguments import non_negative_int, positive_int
from bench.errors import UsageError
from bench.progress import Stage
from bench.registry import UnknownNameError
from bench.report import audit as board
from bench.report import render
from bench.report.output import emit
from bench.workspace import Workspace


EXAMPLES = """examples:
  python -m bench audit --dataset imagefolder --root DIR_OF_CLASS_FOLDERS
  python -m bench audit --dataset cameras --root DIR_OF_PHOTOS --attribute model
  python -m bench audit --dataset patches --format markdown --out audit.md
"""


LABEL_ALIASES = {"smartphone_model": "model"}  # FlickrExif's attribute names the cameras adapter does not know


def add_parser(verbs, add_dataset_options: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """The `audit` verb: the dataset options every verb shares, the resampling, the board's format."""
    parser = verbs.add_parser(
        "audit", help="how strongly a dataset's labels go with its files' JPEG settings, format, size and Exif (no encoder)",
        description="Read every file's header (JPEG quality from its quantisation tables, chroma subsampling, format, pixel "
                    "size, Exif make, model and shot settings) and measure how strongly each property goes with the class "
                    "label: bias-corrected Cramér's V with a bootstrap interval over files, a permutation p-value, and a "
                    "Benjamini-Hochberg mark. The outcome is kept under reports/results/audit/.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="dataset name, or hf:<repo or path> (`list datasets` shows them)")
    add_dataset_options(parser)
    defaults = AuditSettings()
    parser.add_argument("--permutations", type=positive_int, default=defaults.permutations,
                        help=f"permutations of the p-value; the smallest p is 1/(N+1) (default: {defaults.permutations})")
    parser.add_argument("--bootstrap", type=positive_int, default=defaults.resamples,
                        help=f"resamples of the files for the interval (default: {defaults.resamples})")
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed, help=f"seed of both (default: {defaults.seed})")
    parser.add_argument("--workers", type=non_negative_int,
                        help=f"processes reading the headers (default: 0 below {properties.AUTO_SERIAL} files, else one per core, at "
                             "most 8); the numbers do not depend on it")
    parser.add_argument("--format", choices=board.FORMATS, default="table",
                        help="table (rich, the terminal); csv (one row per property, numbers unrounded); markdown (the table as "
                             "printed); json (the stored outcome: every value's count and most associated classes) (default: table)")
    parser.add_argument("--out", help="write the csv, markdown or json to this file instead of the terminal")
    return parser


def settings_of(arguments: argparse.Namespace) -> AuditSettings:
    return AuditSettings(permutations=arguments.permutations, resamples=arguments.bootstrap, seed=arguments.seed)


def label_property(dataset: data.ResolvedDataset) -> str | None:
    """The property the labels are made of (cameras, flickrexif: the chosen Exif attribute), if any."""
    if not dataset.spec.attributes:
        return None
    requested = (dataset.options.attribute or "").strip().lower().replace(" ", "_")
    if requested in LABEL_ALIASES:
        return LABEL_ALIASES[requested]
    try:
        return cameras.attribute_of(dataset.options.attribute)
    except UnknownNameError:
        return None  # a label no file property is made of (FlickrExif's Flash, Year)


def dataset_title(dataset: data.ResolvedDataset) -> str:
    """The dataset as a reader needs it named: with its attribute and folder or source."""
    identity = dataset.identity
    name = f"{identity['name']}@{identity['attribute']}" if identity.get("attribute") else str(identity["name"])
    where = identity.get("root") or (identity.get("origin") or {}).get("source") or dataset.options.source
    return f"{name} ({where})" if where else name


def audit(name: str, options: data.DatasetOptions, settings: AuditSettings, errors: Console, workers: int | None = None) -> AuditOutcome:
    """List the dataset, read its files' headers (in `workers` processes; None: by the dataset's
    size; progress on `errors`), and measure."""
    dataset = data.resolve(name, options)
    records = dataset.listing.records
    files = list(dict.fromkeys(record.path for record in records))
    with Stage(errors, "reading file headers", len(files), unit="files") as progress:
        workers = properties.default_workers(len(files)) if workers is None else workers
        reading = properties.read(files, advance=lambda count: progress.update(advance=count), workers=workers)
    identity: dict[str, Any] = {**dataset.identity, "contents": dataset.contents}
    outcome = measure(dataset.key, dataset_title(dataset), identity, records, reading, settings, label_property(dataset))
    return dataclasses.replace(outcome, provenance=results.provenance())


def run(name: str, options: data.DatasetOptions, settings: AuditSettings, workspace: Workspace, console: Console,
        errors: Console, form: str = "table", out: Path | None = None, workers: int | None = None) -> AuditOutcome:
    """Audit a dataset, store the outcome, and print the board (or write it in `form`)."""
    if out is not None and form == "table":
        raise UsageError("--out writes csv, markdown or json: add --format csv|markdown|json (the table is for the terminal)")
    outcome = audit(name, options, settings, errors, workers)
    where = stored.write(outcome, workspace.results)
    if form == "table":
        console.print(render.terminal(board.grid(outcome)))
    else:
        emit(board.export([outcome], form), out, console, errors, "the audit board")
    errors.print(f"[dim]stored {where}[/dim]")
    return outcome
