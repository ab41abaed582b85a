"""`python -m bench fetch flickrexif --root DIR`: download FlickrExif's split files and photos into
the layout the flickrexif dataset reads, resumably, and list what could not be had."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console

from bench import flickrexif_fetch as flickrexif
from bench.arguments import comma_list
from bench.downloader import DownloadSettings, fetch_all
from bench.errors import UsageError
from bench.progress import Stage
from bench.workspace import Workspace

DATASETS = ("flickrexif",)
DEFAULTS = DownloadSettings()
DESCRIPTION = """Download FlickrExif into --root as the flickrexif dataset reads it:
  DIR/splits/split_data_target_attribute=<Attribute>.json   the paper's split files (downloaded when absent)
  DIR/<FlickrID>.<ext>                                      every photo the chosen split files name
  DIR/fetch-manifest.jsonl                                  the photos still missing, each with its URL and reason
URLs come from the metadata table (Hugging Face `datasets`; pip install -e ".[hf]") and are used exactly as
published. A photo is saved only once complete and decoded; the same command resumes and skips what is there."""
EPILOG = """examples:
  python -m bench fetch flickrexif --root /data/flickrexif
  python -m bench fetch flickrexif --root /data/flickrexif --attributes Make,Model --workers 32
  python -m bench fetch flickrexif --root /data/flickrexif --source /data/FlickrExif-hub-copy
"""


def add_parser(verbs) -> argparse.ArgumentParser:
    parser = verbs.add_parser("fetch", help="download a dataset's photos from the web (FlickrExif), resumably",
                              description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", metavar="DATASET", help=f"the dataset to download: {', '.join(DATASETS)}")
    parser.add_argument("--root", metavar="DIR",
                        help="required: the folder to download into (created if absent); later pass the same --root to run/extract")
    parser.add_argument("--source", default=flickrexif.HUB_NAME, metavar="NAME_OR_PATH",
                        help=f"the metadata table: a Hub name, cached by Hugging Face after the first download "
                             f"(default: {flickrexif.HUB_NAME}), "
                             "or a local copy in the Hub's layout (a folder holding data/train-*.parquet)")
    parser.add_argument("--splits-url", default=flickrexif.SPLITS_URL, metavar="URL",
                        help="where split files absent from DIR/splits/ are downloaded from: a URL (or file:///folder) to which "
                             "each file's name is appended (default: the paper's repository at a fixed commit)")
    parser.add_argument("--attributes", metavar="A,B", type=comma_list,
                        help=f"comma-separated attributes whose split files choose the photos "
                             f"(default: all ten: {', '.join(flickrexif.ATTRIBUTES)})")
    parser.add_argument("--workers", default=str(DEFAULTS.workers), metavar="N",
                        help=f"parallel downloads (threads) (default: {DEFAULTS.workers})")
    parser.add_argument("--retries", default=str(DEFAULTS.retries), metavar="N",
                        help=f"extra tries for failures that may pass: HTTP 5xx, 408, 429, timeouts, dropped connections, "
                             f"truncated bodies; never for other 4xx such as 403, 404, 410 (default: {DEFAULTS.retries})")
    parser.add_argument("--timeout", default=f"{DEFAULTS.timeout:g}", metavar="SECONDS",
                        help=f"give up on a request that receives nothing for this long (default: {DEFAULTS.timeout:g})")
    parser.add_argument("--backoff", default=f"{DEFAULTS.backoff:g}", metavar="SECONDS",
                        help=f"wait before the first retry, doubled before each next one (default: {DEFAULTS.backoff:g})")
    return parser


def run(arguments: argparse.Namespace, workspace: Workspace, console: Console, errors: Console) -> None:
    if arguments.dataset not in DATASETS:
        raise UsageError(f"fetch {arguments.dataset}: bench downloads only {', '.join(DATASETS)}; "
                         "the other datasets are read from folders you provide")
    settings = DownloadSettings(
        workers=_whole("--workers", arguments.workers, least=1), retries=_whole("--retries", arguments.retries, least=0),
        timeout=_seconds("--timeout", arguments.timeout, zero=False), backoff=_seconds("--backoff", arguments.backoff, zero=True),
    )
    attributes = flickrexif.pick_attributes(arguments.attributes)
    root = _writable_root(arguments.root)
    flickrexif.require_datasets()
    try:
        with _only_fetch_in(root), _scratch_folder(root) as scratch:
            ids = flickrexif.requested_ids(flickrexif.ensure_split_files(root, attributes, arguments.splits_url, settings))
            present = flickrexif.present_ids(root).intersection(ids)
            urls = flickrexif.read_urls(arguments.source) if len(present) < len(ids) else {}
            plan = flickrexif.plan_photos(root, ids, present, urls)
            downloaded, failed = _download(plan, settings, scratch, errors)
            missing = [*plan.unlisted, *failed]
            manifest = flickrexif.write_manifest(root, missing)
    except OSError as error:  # network failures become outcomes; what reaches here is the local disk
        where = f" ({error.filename})" if error.filename else ""
        raise UsageError(f"--root {root}: cannot write{where}: {error.strerror or error}; "
                         "free some space or choose another --root") from None
    reasons = Counter(row.reason for row in missing)
    why = f" ({', '.join(f'{reason}: {count:,}' for reason, count in reasons.most_common())})" if reasons else ""
    console.print(f"requested {len(ids):,} photos ({', '.join(attributes)}): {plan.present:,} already present, {downloaded:,} downloaded, "
                  f"{len(missing):,} missing{why}; manifest: {manifest}", highlight=False, soft_wrap=True)


def _download(plan: flickrexif.Plan, settings: DownloadSettings, scratch: Path, errors: Console) -> tuple[int, list[flickrexif.Missing]]:
    """Fetch the plan's photos with a progress bar; the count saved and the failures."""
    if not plan.downloads:
        return 0, []
    ids = {download.target: flickr_id for flickr_id, download in plan.downloads.items()}
    downloaded, failed = 0, []
    try:
        with Stage(errors, "fetching flickrexif", len(plan.downloads), unit="photos") as progress:
            for outcome in fetch_all(plan.downloads.values(), settings, flickrexif.check_photo, scratch):
                if outcome.failure is None:
                    downloaded += 1
                else:
                    failure, download = outcome.failure, outcome.download
                    failed.append(flickrexif.Missing(ids[download.target], download.url, failure.reason, failure.detail))
                progress.update(advance=1)
    except KeyboardInterrupt:
        # Counted on disk: downloads that finished while the threads were stopping are kept too.
        saved = sum(1 for download in plan.downloads.values() if download.target.exists())
        errors.print(f"interrupted: the {saved:,} photos this fetch saved are kept; the same command fetches the rest")
        raise
    return downloaded, failed


def _writable_root(text: str | None) -> Path:
    if not text:
        raise UsageError("fetch needs --root DIR: the folder to download into (created if absent)")
    root = Path(text).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--root {root} is a file, not a folder; choose a folder (it is created if absent)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tempfile.mkdtemp(prefix=".fetch-write-check-", dir=root))
    except OSError as error:
        raise UsageError(f"--root {root}: cannot write there ({error.strerror or error}); choose a folder you can write to") from None
    return root


@contextmanager
def _only_fetch_in(root: Path) -> Iterator[None]:
    """Hold <root>/.fetch.lock, so a second fetch into the same folder cannot clear the first one's partial files."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(root / flickrexif.LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"another fetch is writing into {root} (it holds {lock.lock_file}); "
                         "wait for it to end, or choose another --root") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _scratch_folder(root: Path) -> Iterator[Path]:
    """<root>/.fetch-partial for bodies being downloaded: emptied first (a killed fetch leaves its
    partial bodies there, never under a photo's name) and removed at the end."""
    scratch = root / flickrexif.SCRATCH_NAME
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _whole(option: str, text: str, least: int) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise UsageError(f"{option} {text!r}: not a whole number; give one of at least {least}") from None
    if value < least:
        raise UsageError(f"{option} {value}: must be at least {least}")
    return value


def _seconds(option: str, text: str, zero: bool) -> float:
    try:
        value = float(str(text))
    except ValueError:
        value = float("nan")
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        raise UsageError(f"{option} {text!r}: give a number of seconds{'' if zero else ' above 0'}, e.g. {option} 30")
    return value
