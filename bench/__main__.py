"""Command line: `python -m bench {list,extract,run,query,leaderboard}`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

from bench import index, processing
from bench.arguments import comma_list, masking_op, positive_int
from bench.tasks.linear_probe import SCHEDULES, ProbeSettings
from bench.tasks.options import DEFAULT_ENCODERS
from bench.workspace import Workspace

EPILOG = """examples:
  python -m bench run knn-influence                    # offline default: demo data, two EfficientNets
  python -m bench run knn-influence --group jpeg --k 10 --encoders effnet/lite0.in1k
  python -m bench extract --dataset demo --encoder effnet/lite0.in1k --group jpeg
  python -m bench query --dataset demo --encoder effnet/lite0.in1k --where "processing = 'jpeg75_420' AND label = 3"
  python -m bench query --dataset demo --encoder effnet/lite0.in1k --like photo.jpg --k 5 --where "processing = 'jpeg95_444'"
  python -m bench leaderboard
  python -m bench list encoders
"""


def _add_extraction_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="the dataset's folder, for datasets that live on disk (layout: datasets/<name>.toml)")
    parser.add_argument("--attribute", help="label attribute for datasets with several (e.g. make, model, iso for cameras/flickrexif)")
    parser.add_argument("--device", default="auto", help="cuda, mps, cpu or auto (default: the best available)")
    parser.add_argument("--batch-size", type=positive_int, help="images per forward pass (default: 8 on CPU, 256 on a GPU)")
    parser.add_argument("--workers", type=int, help="DataLoader worker processes (default: 0 on CPU, every core on a GPU)")
    parser.add_argument("--weights", help="local checkpoint file replacing the encoder's pretrained weights (one encoder only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure what frozen visual encoders know about image processing and acquisition.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--home", help="workspace root holding embeddings/, indexes/, reports/ (default: $BENCH_HOME or the current folder)")
    parser.add_argument("--encoders-file", help="TOML file declaring extra encoders ([[encoder]] tables; see README, 'Custom encoders')")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    listing = verbs.add_parser("list", help="list encoders, datasets, tasks or processings")
    listing.add_argument("kind", choices=("encoders", "datasets", "tasks", "processings"))
    listing.add_argument("--family", choices=("cvl", "ssl", "sup"), help="encoders of one family only")

    extract = verbs.add_parser("extract", help="embed a dataset under processings into the store (resumable)")
    extract.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    extract.add_argument("--encoder", required=True, help="encoder name, e.g. effnet/lite0.in1k")
    which = extract.add_mutually_exclusive_group()
    which.add_argument("--group", default="jpeg", help=f"processing group: {', '.join(processing.GROUPS)} (default: jpeg)")
    which.add_argument("--processings", type=comma_list, help="comma-separated processing names instead of a group")
    extract.add_argument("--splits", type=comma_list, default=("train", "val"), help="comma-separated splits (default: train,val)")
    extract.add_argument("--rebuild", action="store_true", help="drop the table first (needed after a fingerprint mismatch)")
    extract.add_argument("--commit-seconds", type=float, default=5.0, help="commit rows to the store at least this often (default: 5)")
    _add_extraction_options(extract)

    run = verbs.add_parser("run", help="run a task and print its leaderboard; finished cells are skipped")
    run.add_argument("task", help="task name, e.g. knn-influence (`list tasks` shows all)")
    run.add_argument("--dataset", help="dataset name (default: the task's offline dataset: demo, or paircams-sim for paircams)")
    run.add_argument("--encoders", type=comma_list, default=DEFAULT_ENCODERS, help=f"comma-separated encoder names (default: {','.join(DEFAULT_ENCODERS)})")
    run.add_argument("--group", default="jpeg", help=f"processing group: {', '.join(processing.GROUPS)} (default: jpeg)")
    run.add_argument("--k", type=positive_int, help="neighbours for the kNN vote (default: the dataset's; 10 for demo)")
    run.add_argument("--seeds", type=positive_int, default=10, help="seeds of knn-influence's uniform setup and of probe-processing's label draws (default: 10, as the paper)")
    run.add_argument("--backend", choices=index.BACKENDS, default="auto", help="exact search backend (default: auto)")
    run.add_argument("--overwrite", action="store_true", help="recompute cells that already have results")
    probe = run.add_argument_group("linear probes (probe-processing, probe-acquisition)")
    paper = ProbeSettings()
    probe.add_argument("--trials", type=positive_int, default=paper.trials, help=f"hyper-parameter search trials (default: {paper.trials}, as the paper)")
    probe.add_argument("--epochs", type=positive_int, default=paper.epochs, help=f"training epochs per probe (default: {paper.epochs}, as the paper)")
    probe.add_argument(
        "--schedule", choices=SCHEDULES, default=paper.schedule,
        help="learning-rate schedule: paper = cosine stepped with the epoch index after each epoch (epochs 0 and 1 at the "
        "initial rate, as the paper's code), cosine = the textbook curve from epoch 0 (default: paper)",
    )
    probe.add_argument("--mask", type=masking_op, default="0.95",
                       help="probe-acquisition: masked share of each crop, 0.95 (default, the paper's), 0.9, 0.75, 0.5, 0.25, 0, "
                       "or none for the unmasked files")
    _add_extraction_options(run)

    query = verbs.add_parser("query", help="rows of an embedding table by metadata filter, or the neighbours of an image")
    query.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    query.add_argument("--encoder", required=True, help="encoder name whose table to read")
    query.add_argument("--attribute", help="the label attribute the table was extracted with (cameras, flickrexif)")
    query.add_argument("--where", help="SQL filter over the table's columns, e.g. \"camera_make = 'Canon' AND processing = 'jpeg95_444'\"")
    query.add_argument("--columns", type=comma_list, help="comma-separated columns to show (default: all but the vector)")
    query.add_argument("--limit", type=positive_int, help=f"at most this many rows (default: all; {TABLE_ROWS} for --format table)")
    query.add_argument("--format", choices=("table", "csv", "parquet"), default="table", help="output format (default: table)")
    query.add_argument("--out", help="write to this file instead of the terminal (required for parquet)")
    query.add_argument("--like", metavar="IMAGE_PATH", help="return the rows nearest to this image (cosine), best first")
    query.add_argument("--k", type=positive_int, default=10, help="neighbours for --like (default: 10)")
    query.add_argument("--backend", choices=index.BACKENDS, default="auto", help="exact search backend for --like (default: auto)")

    board = verbs.add_parser("leaderboard", help="print leaderboards from stored results alone")
    board.add_argument("--task", help="one task only")

    report = verbs.add_parser("report", help="write an HTML + Markdown report with figures from stored results alone")
    report.add_argument("--name", default="latest", help="report folder: reports/<name>/ (default: latest)")
    report.add_argument("--title", default="bench report", help="title of the report (default: bench report)")
    return parser


TABLE_ROWS = 50


def _query(arguments: argparse.Namespace, workspace: Workspace, console: Console) -> None:
    import pyarrow.csv
    import pyarrow.parquet

    from bench import query, store

    source = store.Store(workspace.embeddings_uri)
    dataset = f"{arguments.dataset}@{arguments.attribute}" if arguments.attribute else arguments.dataset
    if arguments.format == "parquet" and not arguments.out:
        raise query.QueryError("--format parquet needs --out FILE")
    if arguments.like:
        found = query.like(
            source, dataset, arguments.encoder, Path(arguments.like), arguments.k,
            where=arguments.where, columns=arguments.columns, backend=arguments.backend,
        )
    else:
        limit = arguments.limit or (TABLE_ROWS if arguments.format == "table" and not arguments.out else None)
        found = query.select(source, dataset, arguments.encoder, arguments.where, arguments.columns, limit)
    if arguments.format == "parquet":
        pyarrow.parquet.write_table(found, arguments.out)
    elif arguments.format == "csv":
        pyarrow.csv.write_csv(found, arguments.out or sys.stdout.buffer)
    else:
        grid = Table(title=f"{dataset} x {arguments.encoder}: {found.num_rows} rows", title_justify="left")
        for name in found.column_names:
            grid.add_column(name, overflow="fold")
        for row in found.to_pylist():
            grid.add_row(*("" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value) for value in row.values()))
        (Console(file=open(arguments.out, "w", encoding="utf-8"), width=200) if arguments.out else console).print(grid)
    if arguments.out:
        console.print(f"{found.num_rows} rows written to {arguments.out}")


def _list(kind: str, family: str | None, console: Console) -> None:
    from rich.markup import escape

    from bench import data, encoders, tasks

    grid = Table(title=kind, title_justify="left")
    if kind == "encoders":
        for header in ("name", "family", "source", "input", "dim", "offline now"):
            grid.add_column(header)
        for spec in encoders.ENCODERS.values():
            if family is None or spec.family == family:
                ready = "[green]yes[/green]" if encoders.available_offline(spec) else "[dim]no[/dim]"
                grid.add_row(escape(spec.name), spec.family, escape(spec.source), str(spec.input_size), str(spec.embed_dim), ready)
    elif kind == "datasets":
        grid.add_column("name")
        grid.add_column("description")
        grid.add_column("card")
        for spec in data.DATASETS.values():
            grid.add_row(spec.name, escape(spec.description), spec.card)
    elif kind == "tasks":
        grid.add_column("name")
        grid.add_column("description")
        for task in tasks.TASKS.values():
            grid.add_row(task.name, escape(task.description))
    else:
        grid.add_column("name")
        grid.add_column("groups")
        grid.add_column("stage")
        grid.add_column("what it does")
        for op in processing.PROCESSINGS.values():
            groups = ", ".join(name for name, members in processing.GROUPS.items() if op.name in members) or "masking"
            grid.add_row(op.name, groups, op.stage, escape(op.description))
    console.print(grid)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    # Piped output (files, CI logs) gets room for the leaderboard columns instead of 80.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(width=140 if piped else None)
    errors = Console(stderr=True)
    workspace = Workspace.at(arguments.home)
    from bench import data, encoders, leaderboard, registry, store, tasks
    from bench.tasks.options import RunOptions

    from bench.encoders import custom
    from bench.query import QueryError
    from bench.tasks.linear_probe import ProbeDependencyError
    from bench.tasks.paircams import PairCamsDataError
    from bench.tasks.probes import ProbeDataError

    expected = (
        QueryError,
        custom.EncodersFileError,
        registry.UnknownNameError,
        store.FingerprintMismatchError,
        store.MissingEmbeddingsError,
        encoders.WeightsUnavailableError,
        FileNotFoundError,
        PairCamsDataError,
        ProbeDataError,
        ProbeDependencyError,
    )
    try:
        if arguments.encoders_file:
            custom.register_file(arguments.encoders_file)
        if arguments.verb == "list":
            _list(arguments.kind, arguments.family, console)
        elif arguments.verb == "extract":
            from bench import extraction

            names = arguments.processings or processing.group(arguments.group)
            spec = encoders.get(arguments.encoder)
            if arguments.weights:
                spec = custom.with_weights(spec, arguments.weights)
            extraction.extract(
                data.get(arguments.dataset), spec, names, store.Store(workspace.embeddings_uri),
                splits=arguments.splits, device=arguments.device, batch_size=arguments.batch_size,
                workers=arguments.workers, commit_seconds=arguments.commit_seconds, rebuild=arguments.rebuild,
                rejects_dir=workspace.rejects, console=errors,
                dataset_options=RunOptions(workspace, root=arguments.root, attribute=arguments.attribute).dataset_options(),
            )
        elif arguments.verb == "run":
            task = tasks.get(arguments.task)
            if arguments.weights and len(arguments.encoders) != 1:
                raise custom.EncodersFileError("--weights replaces the checkpoint of one encoder: name exactly one with --encoders")
            options = RunOptions(
                workspace=workspace, dataset=arguments.dataset or task.default_dataset, encoders=arguments.encoders, group=arguments.group,
                k=arguments.k, seeds=arguments.seeds, backend=arguments.backend, device=arguments.device,
                batch_size=arguments.batch_size, workers=arguments.workers, overwrite=arguments.overwrite,
                weights=arguments.weights, root=arguments.root, attribute=arguments.attribute,
                trials=arguments.trials, epochs=arguments.epochs, schedule=arguments.schedule, mask=arguments.mask,
            )
            for name in options.encoders:  # fail on a typo before any long work starts
                encoders.get(name)
            processing.group(options.group)
            data.get(options.dataset)
            task.execute(options, errors)
            leaderboard.show(workspace.results, [task.name], console)
        elif arguments.verb == "query":
            _query(arguments, workspace, console)
        elif arguments.verb == "report":
            from bench import report

            page, markdown, figures = report.write(workspace.results, workspace.reports / arguments.name, arguments.title)
            console.print(f"wrote {page} and {markdown} with {len(figures)} figures")
        elif arguments.verb == "leaderboard":
            names = [tasks.get(arguments.task).name] if arguments.task else None
            leaderboard.show(workspace.results, names, console)
    except expected as error:
        errors.print(f"[bold red]error:[/bold red] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        errors.print("interrupted: rows already committed are kept; run the same command again to resume.")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
