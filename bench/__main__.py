"""Command line: `python -m bench {list,extract,run,query,leaderboard,report}`."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence


def _unshadow() -> None:
    """Under `python -m`, a folder named `bench` in the current folder (the checkout itself, when
    it is named bench) is imported as an empty namespace package in place of an editable install's
    real one, which then lacks __version__: put the real package back, or stop with one line."""
    package = sys.modules.get("bench")
    if package is None or getattr(package, "__file__", None) is not None:
        return
    shadows = {Path(entry).resolve() for entry in package.__path__}
    sys.path[:] = [entry for entry in sys.path if (Path(entry or ".").resolve() / "bench").resolve() not in shadows]
    del sys.modules["bench"]
    import bench

    if getattr(bench, "__file__", None) is None:
        folders = ", ".join(str(shadow) for shadow in sorted(shadows))
        sys.exit(f"error: the folder {folders} shadows the bench package (it has no __init__.py); run python -m bench from another folder")


_unshadow()

from rich.console import Console  # the imports below run after _unshadow (pyproject lets E402 pass here)
from rich.markup import escape
from rich.table import Table

from bench import exact_search, processing
from bench.arguments import comma_list, non_negative_int, positive_int, seconds, split_map
from bench.encoders.catalog import DEFAULT_ENCODERS
from bench.encoders.spec import FAMILIES
from bench.errors import BenchError, UsageError
from bench.extraction.settings import ENGINES, PRECISIONS, ExtractionSettings
from bench.invocation import Invocation
from bench.workspace import Workspace

if TYPE_CHECKING:
    from bench import data

EPILOG = """examples:
  python -m bench run knn-influence                    # offline default: demo data, two EfficientNets
  python -m bench run knn-influence --group jpeg --k 10 --encoders effnet/lite0.in1k
  python -m bench extract --dataset demo --encoders effnet/lite0.in1k,effnet/lite0.random --group jpeg
  python -m bench query --dataset demo --encoder effnet/lite0.in1k --where "processing = 'jpeg75_420' AND label = 3"
  python -m bench query --dataset demo --encoder effnet/lite0.in1k --like photo.jpg --k 5 --where "processing = 'jpeg95_444'"
  python -m bench leaderboard
  python -m bench list encoders
"""
TABLE_ROWS = 50
HOME_HELP = "workspace root holding embeddings/ and reports/ (default: $BENCH_HOME or the current folder)"
ENCODERS_FILE_HELP = "TOML file declaring extra encoders ([[encoder]] tables; see docs/encoders.md, 'Custom encoders')"


def _add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    """--home and --encoders-file, accepted before and after the verb."""
    default = None if top else argparse.SUPPRESS  # a value after the verb wins; none keeps the one before it
    parser.add_argument("--home", default=default, help=HOME_HELP)
    parser.add_argument("--encoders-file", default=default, help=ENCODERS_FILE_HELP)


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="the dataset's folder, for datasets that live on disk (layout: datasets/<name>.toml)")
    parser.add_argument("--attribute", help="label attribute for datasets with several (e.g. make, model, iso for cameras/flickrexif)")
    parser.add_argument("--verify-content", action="store_true",
                        help="know each image file by a hash of its bytes, not its size and time: catches a file rewritten with "
                             "the same size and its old time, at the cost of reading every file in full at each command; the first "
                             "run with it (or without it, after) extracts every image again")
    parser.add_argument("--groups", help="CSV with columns image,group: images of one group (crops or frames of one photo) are one "
                        "unit, resampled and permuted together (default: the dataset's unit, e.g. each image)")
    hub = parser.add_argument_group("Hugging Face datasets (--dataset hf:<repo or local path>; see datasets/hf.toml)")
    hub.add_argument("--image-column", help="the column of images (default: the dataset's one Image column, else image or img)")
    hub.add_argument("--label-column", help="the column of class labels (default: the one ClassLabel column, else label or labels)")
    hub.add_argument("--id-column", help="a column of unique image ids (default: <split>/<row>)")
    hub.add_argument("--hf-splits", type=split_map, metavar="train=NAME,val=NAME[,test=NAME]",
                     help="which of the dataset's splits is train, val and test (default: train; validation, else test, as val)")
    hub.add_argument("--revision", help="a branch, tag or commit of the Hub repo (hf:<repo> and paircams; default: main)")


def _add_extraction_options(parser: argparse.ArgumentParser) -> None:
    _add_dataset_options(parser)
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, mps, cpu or auto (default: the best available)")
    parser.add_argument("--batch-size", type=positive_int, help="images per forward pass (default: 8 on CPU, 256 on a GPU)")
    parser.add_argument("--workers", type=non_negative_int, help="local engine: DataLoader worker processes (default: 0 on CPU, every core on a GPU); the Ray engine sizes its own")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="forward-pass precision; vectors are stored as float32 and tables of different precisions never mix (default: fp32, as the paper)")
    parser.add_argument("--engine", choices=ENGINES, default="local", help="local (this process) or ray (Ray Data; see docs/scale.md)")
    parser.add_argument("--ray-address", help="with --engine ray: HOST:PORT of a running Ray cluster (ray start --head prints it; default: start a local one for this command)")
    parser.add_argument("--weights", help="local checkpoint file replacing the encoder's pretrained weights (one encoder only)")


def _settings(arguments: argparse.Namespace) -> ExtractionSettings:
    settings = ExtractionSettings(
        device=arguments.device, batch_size=arguments.batch_size, workers=arguments.workers,
        commit_seconds=getattr(arguments, "commit_seconds", 5.0), precision=arguments.precision,
        engine=arguments.engine, ray_address=arguments.ray_address,
    )
    if settings.device != "auto":  # a device that is absent or misspelt fails now, not after the listing
        from bench.runtime import pick_device

        pick_device(settings.device)
    return settings


def _version() -> str:
    import bench

    return bench.__version__


def build_parser() -> argparse.ArgumentParser:
    from bench import fetching
    from bench.report import leaderboard
    from bench.audit import command as audit_command
    from bench.tasks import run_options

    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure what frozen visual encoders know about image processing and acquisition.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser, top=True)
    parser.add_argument("--version", action="version", version=f"bench {_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    listing = verbs.add_parser("list", help="list encoders, datasets, tasks or processings")
    listing.add_argument("kind", choices=("encoders", "datasets", "tasks", "processings"))
    listing.add_argument("--family", choices=FAMILIES, help="encoders of one family only")
    listing.add_argument("--set", help="the encoders of one set, in its order (e.g. paper, cvl, ssl, sup, offline, or a set of --encoders-file)")

    extract = verbs.add_parser("extract", help="embed a dataset under processings into the store (resumable)")
    extract.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    extract.add_argument("--encoders", "--encoder", dest="encoders", type=comma_list, required=True,
                         help="comma-separated encoder names or sets (e.g. effnet/lite0.in1k, or paper for the paper's 47); one pass over the images feeds them all")
    which = extract.add_mutually_exclusive_group()
    which.add_argument("--group", default="jpeg", help=f"processing group: {', '.join(processing.GROUPS)} (default: jpeg)")
    which.add_argument("--processings", type=comma_list, help="comma-separated processing names instead of a group")
    extract.add_argument("--splits", type=comma_list, default=("train", "val"), help="comma-separated splits (default: train,val)")
    extract.add_argument("--rebuild", action="store_true", help="drop the table first (needed after a fingerprint mismatch)")
    extract.add_argument("--commit-seconds", type=seconds, default=5.0, help="commit rows to the store at least this often (default: 5)")
    extract.add_argument("--plan", action="store_true",
                         help="change nothing: print per encoder what is stored and missing, the disk and the time it would take here, and stop")
    _add_extraction_options(extract)

    run = verbs.add_parser("run", help="run a task and print its leaderboard; finished cells are skipped")
    run.add_argument("task", help="task name, e.g. knn-influence (`list tasks` shows all)")
    run.add_argument("--dataset", help="dataset name, or hf:<repo or path> (default: the task's offline dataset: patches; paircams-sim for paircams, cameras for probe-acquisition)")
    run.add_argument("--encoders", type=comma_list, default=DEFAULT_ENCODERS, help=f"comma-separated encoder names or sets (paper, cvl, ssl, sup, offline; `list encoders` shows them); NAME@blockN reads NAME at its N-th block, NAME@blocks at every block (default: {','.join(DEFAULT_ENCODERS)})")
    run.add_argument("--overwrite", action="store_true", help="recompute cells that already have results")
    run.add_argument("--rebuild", action="store_true",
                     help="drop the encoders' tables for this dataset and extract again (after a fingerprint or folder change); implies --overwrite")
    run.add_argument("--plan", action="store_true",
                     help="change nothing: print which cells are cached, and per encoder what is stored and missing, the disk and the "
                          "time the extraction would take here (measured on a few items), then stop")
    _add_extraction_options(run)
    task_options = run.add_argument_group("task options (`list tasks` shows which task takes which)")
    for option in run_options().values():
        task_options.add_argument(option.flag, dest=f"task_{option.name}", type=option.parse, choices=option.choices,
                                  default=argparse.SUPPRESS, metavar=None if option.choices else option.name.upper(), help=option.help)

    query = verbs.add_parser("query", help="rows of an embedding table by metadata filter, or the neighbours of an image")
    query.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    query.add_argument("--encoder", required=True, help="encoder name whose table to read")
    _add_dataset_options(query)
    query.add_argument("--where", help="SQL filter over the table's columns, e.g. \"camera_make = 'Canon' AND processing = 'jpeg95_444'\"")
    query.add_argument("--columns", type=comma_list, help="comma-separated columns to show (default: all but vector and source_stamp)")
    query.add_argument("--limit", type=positive_int, help=f"at most this many rows (default: all; {TABLE_ROWS} for --format table)")
    query.add_argument("--format", choices=("table", "csv", "parquet"), default="table", help="output format (default: table)")
    query.add_argument("--out", help="write to this file instead of the terminal (required for parquet)")
    query.add_argument("--like", metavar="IMAGE_PATH", help="return the rows nearest to this image (cosine), best first")
    query.add_argument("--k", type=positive_int, help="neighbours for --like (default: 10)")
    query.add_argument("--backend", choices=exact_search.BACKENDS, default="auto", help="exact search backend for --like (default: auto)")
    query.add_argument("--exact", action="store_true", help="with --like: search every row exactly even when the table has a vector index")

    indexing = verbs.add_parser("vector-index", help="build the approximate vector index that makes `query --like` fast on big tables")
    indexing.add_argument("action", choices=("build",), help="build: (re)build the table's index and measure it against exact search")
    indexing.add_argument("--dataset", default="demo", help="dataset name (default: demo)")
    indexing.add_argument("--encoder", required=True, help="encoder name whose table to index")
    _add_dataset_options(indexing)
    indexing.add_argument("--sample", type=positive_int, default=100, help="rows used as queries to measure recall@10 and latency (default: 100)")

    board = verbs.add_parser("leaderboard", help="print leaderboards from stored results alone")
    board.add_argument("--task", help="one task only")
    board.add_argument("--view", choices=leaderboard.BOARD_VIEWS, default="tasks",
                       help="tasks: one table per task, dataset and condition; traces: one ranking of encoders by how strongly "
                            "they carry traces across those tables (Borda count); depth: each task's effect against the block "
                            "of the NAME@blockN encoders it was read at (default: tasks)")
    board.add_argument("--format", choices=leaderboard.FORMATS, default="table",
                       help="table (rich, the terminal); csv (one row per board and encoder, every number unrounded, each interval's "
                            "low, high, p-value, adjusted p-value and mark as columns of their own); markdown (the tables as printed); json (the same with each "
                            "cell's identity and provenance) (default: table)")
    board.add_argument("--out", help="write the csv, markdown or json to this file instead of the terminal")
    board.add_argument("--adjust", choices=leaderboard.ADJUSTMENTS, default="bh",
                       help="how a board's marks control false discoveries over its tests: bh = Benjamini–Hochberg (for the "
                            "positively dependent one-sided tests of encoders on the same images), by = Benjamini–Yekutieli (any "
                            "dependence), none = each test at 5 %% on its own (default: bh)")

    report = verbs.add_parser("report", help="write an HTML + Markdown report with figures from stored results alone")
    report.add_argument("--name", default="latest", help="report folder: reports/<name>/ (default: latest)")
    report.add_argument("--title", default="bench report", help="title of the report (default: bench report)")
    fetch = fetching.add_parser(verbs)
    audit = audit_command.add_parser(verbs, _add_dataset_options)
    for sub in (listing, extract, run, query, indexing, board, report, fetch, audit):
        _add_common(sub, top=False)
    return parser


def _query(arguments: argparse.Namespace, workspace: Workspace, console: Console, command: Invocation) -> None:
    from bench import query, store

    if arguments.format == "parquet" and not arguments.out:
        raise query.QueryError("--format parquet needs --out FILE")
    if arguments.k is not None and not arguments.like:
        raise query.QueryError("--k counts the neighbours of --like IMAGE; without --like, --limit N caps the rows")
    if arguments.out:
        _check_out(arguments.out)
    source = store.Store(workspace.embeddings_uri)
    dataset = query.dataset_key(source, arguments.dataset, arguments.encoder, _dataset_options(arguments))
    limit = arguments.limit or (TABLE_ROWS if arguments.format == "table" and not arguments.out else None)
    if arguments.like:
        found = query.like(
            source, dataset, arguments.encoder, Path(arguments.like), arguments.k or 10,
            where=arguments.where, columns=arguments.columns, backend=arguments.backend, exact=arguments.exact,
        )
    else:
        found = query.select(source, dataset, arguments.encoder, arguments.where, arguments.columns, limit)
    with _writing(arguments.out):
        _write_rows(arguments, found, dataset, limit, console)
    if arguments.like and arguments.format == "table":
        from bench.cli_fixes import index_advice

        advice = f"; {index_advice(arguments.encoder, command)}" if query.index_would_help(found) else ""
        console.print(f"[dim]{escape(query.search_method(found) + advice)}[/dim]")
    if arguments.out:
        console.print(f"{found.num_rows} rows written to {arguments.out}")


def _write_rows(arguments: argparse.Namespace, found, dataset: str, limit: int | None, console: Console) -> None:
    """The rows a query found, in its format, to --out or the terminal."""
    import pyarrow.csv
    import pyarrow.parquet

    if arguments.format == "parquet":
        pyarrow.parquet.write_table(found, arguments.out)
    elif arguments.format == "csv":
        pyarrow.csv.write_csv(found, arguments.out or sys.stdout.buffer)
    else:
        from bench import query_view

        capped = not arguments.like and not arguments.limit and found.num_rows == limit
        title = f"{dataset} x {arguments.encoder}: {found.num_rows} rows" + (" (the first; --limit N shows more)" if capped else "")
        with open(arguments.out, "w", encoding="utf-8") if arguments.out else nullcontext(None) as handle:
            out = Console(file=handle, width=200) if handle else console
            query_view.show(out, found, title, explicit=bool(arguments.columns), ranked=bool(arguments.like))


def _vector_index(arguments: argparse.Namespace, workspace: Workspace, console: Console) -> None:
    from bench import query, store, vector_index

    source = store.Store(workspace.embeddings_uri)
    dataset = query.dataset_key(source, arguments.dataset, arguments.encoder, _dataset_options(arguments))
    if not source.has_table(dataset, arguments.encoder):
        raise query.QueryError(f"no table for {dataset} x {arguments.encoder} in {source.uri}; extract it first")
    console.print(f"building the vector index of {dataset} x {arguments.encoder} ({source.count(dataset, arguments.encoder)} rows) …")
    console.print(vector_index.build(source, dataset, arguments.encoder, sample=arguments.sample).line())


def _list(kind: str, family: str | None, console: Console, chosen_set: str | None = None) -> None:
    from rich.markup import escape

    from bench import data, encoders, tasks

    grid = Table(title=kind if chosen_set is None else f"encoders of the set {chosen_set}", title_justify="left")
    if chosen_set is not None and kind != "encoders":
        raise UsageError("--set lists the encoders of a set: use it with `list encoders`")
    if kind == "encoders":
        members = encoders.expand([chosen_set]) if chosen_set is not None else tuple(encoders.ENCODERS)
        for header in ("name", "family", "source", "input", "dim", "offline now"):
            grid.add_column(header)
        for spec in (encoders.get(name) for name in members):
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
        grid.add_column("options")
        for task in tasks.TASKS.values():
            grid.add_row(task.name, escape(task.description), " ".join(option.flag for option in task.options))
    else:
        grid.add_column("name")
        grid.add_column("groups")
        grid.add_column("stage")
        grid.add_column("what it does")
        for op in processing.PROCESSINGS.values():
            groups = ", ".join(name for name, members in processing.GROUPS.items() if op.name in members) or "masking"
            grid.add_row(op.name, groups, op.stage, escape(op.description))
    if kind == "encoders":
        grid.caption = encoders.depth.NAMING
    console.print(grid)
    if kind == "encoders" and chosen_set is None:
        sets = Table(title="encoder sets (name one wherever encoders are named: --encoders paper)", title_justify="left")
        for header in ("set", "encoders", "what"):
            sets.add_column(header)
        for found in encoders.SETS.values():
            sets.add_row(found.name, str(len(encoders.expand([found.name]))), escape(found.description))
        console.print(sets)


def _extract(arguments: argparse.Namespace, workspace: Workspace, console: Console) -> None:
    from bench import data, encoders, extraction, store
    from bench.encoders import custom

    names = arguments.processings or processing.group(arguments.group)
    specs = [encoders.get(name) for name in encoders.expand(arguments.encoders)]
    if arguments.weights:
        if len(specs) != 1:
            raise UsageError("--weights replaces the checkpoint of one encoder: name exactly one with --encoders")
        specs = [custom.with_weights(specs[0], arguments.weights)]
    for name in names:
        processing.get(name)
    dataset = data.resolve(arguments.dataset, _dataset_options(arguments))
    target = store.Store(workspace.embeddings_uri)
    target.table_names()  # a store that cannot be reached fails here, before the model libraries load
    extraction.extract(
        dataset, specs, names, target, splits=arguments.splits,
        settings=_settings(arguments), rebuild=arguments.rebuild, rejects_dir=workspace.rejects, console=console, plan_only=arguments.plan,
    )


def _check_out(path: str) -> None:
    """`--out` must name a file in an existing folder, before any work."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise UsageError(f"--out {path}: is a folder; name a file to write (e.g. --out {out / 'rows.csv'})")
    if not out.parent.is_dir():
        raise UsageError(f"--out {path}: the folder {out.parent} does not exist; create it first or choose another path")
    if out.is_symlink() and not out.exists():
        raise UsageError(f"--out {path}: a symbolic link to {os.readlink(out)}, which does not exist; remove the link or choose another path")


@contextmanager
def _writing(path: str | None) -> Iterator[None]:
    """An --out file that cannot be written (disk full, permissions) is one line naming it."""
    try:
        yield
    except OSError as error:
        if path is None or error.filename not in (None, path, str(Path(path).expanduser())):
            raise
        raise UsageError(f"--out {path}: cannot write it ({error.strerror or error}); free space or choose another path") from None


def _root(root: str | None) -> Path | None:
    return Path(root).expanduser() if root else None


def _dataset_options(arguments: argparse.Namespace) -> "data.DatasetOptions":
    from bench import data

    return data.DatasetOptions(root=_root(arguments.root), attribute=arguments.attribute, revision=arguments.revision,
                               groups=Path(arguments.groups) if getattr(arguments, "groups", None) else None,
                               image_column=arguments.image_column, label_column=arguments.label_column,
                               id_column=arguments.id_column, hf_splits=arguments.hf_splits or (),
                               verify_content=arguments.verify_content)


def _run(arguments: argparse.Namespace, workspace: Workspace, console: Console, errors: Console) -> None:
    from bench import data, encoders, tasks
    from bench.report import leaderboard
    from bench.runner import RunRequest, run

    task = tasks.get(arguments.task)
    given = {name.removeprefix("task_"): value for name, value in vars(arguments).items() if name.startswith("task_")}
    foreign = [option for option in tasks.run_options().values() if option.name in given and option not in task.options]
    if foreign:
        takes = " ".join(option.flag for option in task.options) or "no task options"
        raise UsageError(f"{task.name} does not take {', '.join(option.flag for option in foreign)}; it takes {takes}")
    names = encoders.expand(arguments.encoders)  # sets become their encoders; a typo fails before any work
    if arguments.weights and len(names) != 1:
        raise UsageError("--weights replaces the checkpoint of one encoder: name exactly one with --encoders")
    request = RunRequest(
        workspace=workspace, dataset=arguments.dataset or task.default_dataset, encoders=names,
        dataset_options=_dataset_options(arguments),
        extraction=_settings(arguments), overwrite=arguments.overwrite or arguments.rebuild, rebuild=arguments.rebuild,
        weights=arguments.weights, values=given, console=errors, plan_only=arguments.plan,
    )
    data.get(request.dataset)
    if "group" in {option.name for option in task.options}:
        processing.group(request.values.get("group", "jpeg"))
    ran = run(request, task)
    if not arguments.plan:  # this run's board only: the home may hold the task's boards of other datasets and conditions
        leaderboard.show(workspace.results, [task.name], console, errors, only=(ran.dataset, ran.condition))


def _switches(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string, in the parser and its verbs, that takes no value."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _switches(sub)
        elif action.nargs == 0:
            found.update(action.option_strings)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if any("\x00" in value for value in given):  # no shell passes one; a program calling main might
        Console(stderr=True).print("[bold red]error:[/bold red] an argument holds a NUL character, which no name, path or value can "
                                   "contain; remove it", highlight=False)
        return 2
    parser = build_parser()
    arguments = parser.parse_args(argv)
    command = Invocation(tuple(sys.argv[1:] if argv is None else argv), frozenset(_switches(parser)))  # for the fixes errors name
    # Piped output (files, CI logs) gets room for the leaderboard columns instead of 80.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(width=140 if piped else None)
    errors = Console(stderr=True)
    workspace = Workspace.at(arguments.home)
    from bench import tasks
    from bench.report import leaderboard
    from bench.encoders import custom

    try:
        if arguments.encoders_file:
            custom.register_file(arguments.encoders_file)
        if arguments.verb in ("extract", "run", "report", "fetch"):
            workspace.ensure_writable()
        elif arguments.verb != "list":
            workspace.ensure_readable()
        if arguments.verb == "list":
            _list(arguments.kind, arguments.family, console, arguments.set)
        elif arguments.verb == "extract":
            _extract(arguments, workspace, errors)
        elif arguments.verb == "run":
            _run(arguments, workspace, console, errors)
        elif arguments.verb == "query":
            _query(arguments, workspace, console, command)
        elif arguments.verb == "vector-index":
            _vector_index(arguments, workspace, console)
        elif arguments.verb == "report":
            from bench.report import writer

            folder = workspace.report(arguments.name)  # one free plain name, no link leading outside the home
            warn = lambda line: errors.print(f"[yellow]warning:[/yellow] {escape(line)}")  # noqa: E731
            page, markdown, figures = writer.write(workspace.results, folder, arguments.title, warn)
            console.print(f"wrote {page} and {markdown} with {len(figures)} figures")
        elif arguments.verb == "fetch":
            from bench import fetching

            fetching.run(arguments, workspace, console, errors)
        elif arguments.verb == "audit":
            from bench.audit import command as audit_command

            if arguments.out:
                _check_out(arguments.out)
            workspace.ensure_writable()
            audit_command.run(arguments.dataset, _dataset_options(arguments), audit_command.settings_of(arguments), workspace,
                              console, errors, arguments.format, Path(arguments.out).expanduser() if arguments.out else None,
                              workers=arguments.workers)
        elif arguments.verb == "leaderboard":
            names = [tasks.get(arguments.task).name] if arguments.task else None
            if arguments.out:
                if arguments.format == "table":
                    raise UsageError("--out writes csv, markdown or json: add --format csv|markdown|json (the table is for the terminal)")
                _check_out(arguments.out)
            with _writing(arguments.out):
                leaderboard.show(workspace.results, names, console, errors, view=arguments.view, form=arguments.format,
                                 out=Path(arguments.out).expanduser() if arguments.out else None, adjust=arguments.adjust)
    except BenchError as error:
        from bench.cli_fixes import explain

        errors.print(f"[bold red]error:[/bold red] {escape(explain(error, command))}", highlight=False, soft_wrap=True)
        return 2
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):  # the home's disk is full: the user's to free, not a bug
            where = f"{error.filename}: " if error.filename else ""
            errors.print(f"[bold red]error:[/bold red] {escape(where)}no space left on the disk ({escape(error.strerror or str(error))}); "
                         "free some space and run the same command again", highlight=False, soft_wrap=True)
            return 2
        if error.errno != errno.ENAMETOOLONG:  # any path option: a name the file system cannot hold is the user's to shorten
            raise
        name = str(error.filename or "")
        longest = max((len(part.encode("utf-8", "surrogateescape")) for part in Path(name).parts), default=0)
        errors.print(f"[bold red]error:[/bold red] {escape(name[:80])}{'…' if len(name) > 80 else ''}: too long a name for the file "
                     f"system (a part of {longest:,} bytes; most allow 255); choose a shorter path", highlight=False, soft_wrap=True)
        return 2
    except ValueError as error:
        if "null byte" not in str(error):
            raise
        errors.print("[bold red]error:[/bold red] a path read from a file holds a NUL character, which no path can contain; "
                     "remove it from the file that names it", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        if arguments.verb in ("extract", "run"):
            errors.print("interrupted: rows already committed are kept; run the same command again to resume.")
        elif arguments.verb != "fetch":  # fetch says what it kept itself
            errors.print("interrupted.")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
