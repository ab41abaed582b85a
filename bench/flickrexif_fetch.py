"""What fetching FlickrExif takes: the paper's split files, the Flickr IDs they name, each ID's URL
from the metadata table, the photos already on disk, the check a downloaded photo must pass, and
the manifest of those still missing."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence
from urllib.parse import quote, urlsplit

from bench.data.files import IMAGE_SUFFIXES, walk_images
from bench.downloader import Download, DownloadSettings, Failure, fetch_one
from bench.errors import DataError, DependencyError, UsageError

HUB_NAME = "CTU-OU/FlickrExif"
SPLITS_URL = ("https://raw.githubusercontent.com/ryan-caesar-ramos/visual-encoder-traces/"
              "e29c65b89be93ee23919761e58606f3d16262f54/data/splits/FlickrExif")
ATTRIBUTES = ("Aperture", "Exposure", "Flash", "Focal Length", "ISO Speed", "Is Smartphone", "Make", "Model", "Smartphone Model", "Year")
ID_COLUMN = "Flickr ID"
URL_COLUMN = "url"
SPLIT_KEYS = ("train_ids", "val_ids", "test_ids")
MANIFEST_NAME = "fetch-manifest.jsonl"
SCRATCH_NAME = ".fetch-partial"  # hidden: dataset adapters skip it
LOCK_NAME = ".fetch.lock"
DEFAULT_SUFFIX = ".jpg"
NO_URL = "no URL in the dataset"
UNSUPPORTED_URL = "unsupported URL"
PLACEHOLDER_MARK = "photo_unavailable"  # Flickr redirects a removed photo to a stock image with this name


@dataclass(frozen=True)
class Missing:
    """A photo named by a split file that is not on disk after the fetch, and why."""

    flickr_id: int
    url: str | None
    reason: str
    detail: str


@dataclass(frozen=True)
class Plan:
    requested: tuple[int, ...]  # every ID of the chosen split files, sorted
    present: int  # of those, already on disk
    downloads: dict[int, Download]  # the rest that have a URL
    unlisted: tuple[Missing, ...]  # the rest that have none


def split_file_name(attribute: str) -> str:
    return f"split_data_target_attribute={attribute}.json"


def pick_attributes(names: Sequence[str] | None) -> tuple[str, ...]:
    """The attributes asked for, spelt as the split files spell them (case, spaces, '-' and '_' are
    forgiven); every attribute when the option is not given."""
    if names is None:
        return ATTRIBUTES
    if not names:
        raise UsageError(f"--attributes names no attribute; give one or more of {', '.join(ATTRIBUTES)}, or leave it out for all")
    by_key = {_attribute_key(name): name for name in ATTRIBUTES}
    chosen: list[str] = []
    for name in names:
        found = by_key.get(_attribute_key(name))
        if found is None:
            close = difflib.get_close_matches(name, ATTRIBUTES, n=2, cutoff=0.5)
            hint = f" (did you mean {' or '.join(repr(match) for match in close)}?)" if close else ""
            raise UsageError(f"--attributes: unknown attribute {name!r}{hint}; FlickrExif has {', '.join(ATTRIBUTES)}")
        if found not in chosen:
            chosen.append(found)
    return tuple(chosen)


def ensure_split_files(root: Path, attributes: Iterable[str], base_url: str, settings: DownloadSettings) -> list[Path]:
    """The split file of each attribute under <root>/splits/, downloading those that are absent."""
    folder = root / "splits"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for attribute in attributes:
        name = split_file_name(attribute)
        path = folder / name
        if not path.is_file():
            url = f"{base_url.rstrip('/')}/{quote(name, safe='=')}"
            outcome = fetch_one(Download(url, path), settings, _split_file_check, root / SCRATCH_NAME)
            if outcome.failure is not None:
                raise DataError(f"could not download the split file {name} from {url}: {outcome.failure.detail}; "
                                f"copy it into {folder}/ by hand, or pass --splits-url with a folder that holds it")
        paths.append(path)
    return paths


def requested_ids(split_files: Iterable[Path]) -> tuple[int, ...]:
    """The union of train, val and test IDs over the split files, sorted."""
    ids: set[int] = set()
    for path in split_files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: not a readable split file ({error}); delete it and fetch again to download it anew") from None
        problem = _split_problem(document)
        if problem:
            raise DataError(f"{path}: {problem}; delete it and fetch again to download it anew")
        for key in SPLIT_KEYS:
            ids.update(int(flickr_id) for flickr_id in document[key])
    return tuple(sorted(ids))


def require_datasets() -> None:
    """Fail now, with the command that fixes it, when Hugging Face `datasets` is not installed."""
    try:
        import datasets
    except ImportError:
        datasets = None
    # A folder named `datasets` on the path (this project has one) imports as an empty namespace.
    if not hasattr(datasets, "load_dataset"):
        raise DependencyError('fetch reads the FlickrExif table with Hugging Face `datasets`, which is not installed; '
                              'run: pip install -e ".[hf]"')


def read_urls(source: str) -> dict[int, str | None]:
    """Flickr ID -> URL from the metadata table, by Hub name or from a local copy in the Hub's layout,
    reading only those two columns."""
    require_datasets()
    import datasets

    local = Path(source).expanduser()
    if local.exists():
        source = str(local.resolve())
    elif source.startswith((".", "/", "~")) or source.count("/") > 1:  # a path, not a Hub name (owner/name)
        raise UsageError(f"--source {source}: no such folder; give a local copy of {HUB_NAME} (a folder holding data/*.parquet) "
                         f"or a Hub name such as {HUB_NAME}")
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its failures are reported below, in one line
    try:
        table = datasets.load_dataset(source, split="train", columns=[ID_COLUMN, URL_COLUMN])
    except datasets.exceptions.DatasetGenerationError as error:
        cause = str(error.__cause__ or error.__context__ or error).strip().splitlines()[0]
        raise DataError(f"cannot read the columns {ID_COLUMN!r} and {URL_COLUMN!r} of {source} ({cause}); "
                        f"--source must be {HUB_NAME} or a copy of it") from None
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as error:
        raise DataError(f"cannot load the metadata table {source}: {error}; connect to the internet once "
                        f"(the table is then cached by Hugging Face and works offline), or pass --source with a local copy") from None
    missing = {ID_COLUMN, URL_COLUMN} - set(table.column_names)
    if missing:
        raise DataError(f"{source} has no column {', '.join(sorted(missing))}; --source must be {HUB_NAME} or a copy of it")
    columns = table.select_columns([ID_COLUMN, URL_COLUMN]).to_dict()
    urls: dict[int, str | None] = {}
    for flickr_id, url in zip(columns[ID_COLUMN], columns[URL_COLUMN]):
        if flickr_id is None:
            continue
        try:
            key = int(flickr_id)
        except ValueError:
            raise DataError(f"{source}: {ID_COLUMN} {flickr_id!r} is not a Flickr ID (a whole number); "
                            f"--source must be {HUB_NAME} or a copy of it") from None
        if not urls.get(key):
            urls[key] = url.strip() if isinstance(url, str) and url.strip() else None
    return urls


def present_ids(root: Path) -> set[int]:
    """Flickr IDs with an image file below root, found as the flickrexif adapter finds them."""
    return {int(path.stem) for path in walk_images(root).files if path.stem.isdigit()}


def plan_photos(root: Path, ids: Sequence[int], present: set[int], urls: dict[int, str | None]) -> Plan:
    """Split the requested IDs into those on disk, those to download and those without a URL."""
    downloads: dict[int, Download] = {}
    unlisted: list[Missing] = []
    for flickr_id in ids:
        if flickr_id in present:
            continue
        url = urls.get(flickr_id)
        refused = url_problem(url) if url else None
        if refused is not None:
            unlisted.append(Missing(flickr_id, url, UNSUPPORTED_URL, refused))
        elif url:
            downloads[flickr_id] = Download(url, photo_path(root, flickr_id, url))
        else:
            detail = ("the metadata table has no row with this Flickr ID" if flickr_id not in urls
                      else "its url is empty in the metadata table")
            unlisted.append(Missing(flickr_id, None, NO_URL, detail))
    return Plan(tuple(ids), sum(1 for flickr_id in ids if flickr_id in present), downloads, tuple(unlisted))


def url_problem(url: str) -> str | None:
    """Why `url` is not fetched (None: an http or https URL with a host): local files and other
    schemes are never opened, and a URL that does not parse is one row of the manifest."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a bad port raises here, not at download time)
    except ValueError as error:
        return f"the URL does not parse ({error})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"fetch downloads http and https URLs only, not {parts.scheme + ':' if parts.scheme else 'a URL without a scheme'}"
    if not parts.hostname:
        return "the URL names no host"
    return None


def photo_path(root: Path, flickr_id: int, url: str) -> Path:
    """<root>/<FlickrID>.<ext>, the extension taken from the URL's path (lower-case; jpg if it has none)."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    return root / f"{flickr_id}{suffix if suffix in IMAGE_SUFFIXES else DEFAULT_SUFFIX}"


def check_photo(path: Path, final_url: str) -> Failure | None:
    """Why a downloaded body is not a usable photo: Flickr's stand-in for a removed photo, or bytes
    that do not decode completely as an image."""
    from PIL import Image, UnidentifiedImageError

    if PLACEHOLDER_MARK in urlsplit(final_url).path:
        return Failure("photo unavailable", f"Flickr redirected to its stand-in image {final_url}: the photo was removed or made private")
    try:
        with Image.open(path) as image:
            image.draft(image.mode, (1, 1))  # JPEG: a reduced-scale decode still reads every byte, at a fraction of the memory
            image.load()
    except UnidentifiedImageError:
        with open(path, "rb") as handle:
            head = handle.read(40)
        return Failure("not an image", f"the body is not an image file (it starts with {head!r})")
    except Image.DecompressionBombError as error:
        return Failure("too large", f"{error}; bench's extraction refuses such an image too")
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        return Failure("not an image", f"the image does not decode completely: {error}")
    return None


def write_manifest(root: Path, missing: Iterable[Missing]) -> Path:
    """<root>/fetch-manifest.jsonl, one JSON object per missing photo sorted by ID, replaced atomically."""
    path = root / MANIFEST_NAME
    scratch = root / f".{MANIFEST_NAME}.partial"
    with open(scratch, "w", encoding="utf-8") as handle:
        for row in sorted(missing, key=lambda row: row.flickr_id):
            handle.write(json.dumps({"flickr_id": row.flickr_id, "url": row.url, "reason": row.reason, "detail": row.detail}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(scratch, path)
    return path


def _attribute_key(name: str) -> str:
    return "".join(name.lower().replace("-", " ").replace("_", " ").split())


def _split_problem(document: object) -> str | None:
    if not isinstance(document, dict):
        return "a split file holds one JSON object"
    for key in SPLIT_KEYS:
        values = document.get(key)
        if not isinstance(values, list) or not all(_is_flickr_id(value) for value in values):
            return f"{key!r} must be a list of Flickr IDs"
    return None


def _is_flickr_id(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())


def _split_file_check(path: Path, final_url: str) -> Failure | None:
    try:
        problem = _split_problem(json.loads(path.read_text(encoding="utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"not JSON ({error})"
    return Failure("not a split file", f"the body is not a split file: {problem}") if problem else None
