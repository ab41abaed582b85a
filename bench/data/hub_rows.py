"""Rows of Hugging Face datasets, read through the `datasets` library: the library loaded on
demand, a dataset's splits loaded once per process, and a record's locator (hf://…) turned back
into its image's published bytes. Records and listings are made in bench.data.hub."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from bench.errors import DataError, DependencyError

LOCATOR = "hf://"  # a record's path: hf://<quoted source>/<quoted revision>/<split>/<quoted image column>/<row>
PAIRCAMS_REPO = "CTU-OU/PairCams"


def library():
    """The `datasets` module, or a one-line error saying how to install it. (The project's own
    `datasets/` folder of cards can shadow an absent library as an empty namespace package.)"""
    try:
        import datasets
    except ImportError:
        datasets = None
    if datasets is None or not hasattr(datasets, "load_dataset"):
        raise DependencyError('reading Hugging Face datasets needs the `datasets` library: pip install -e ".[hf]"')
    return datasets


def is_local(source: str) -> bool:
    return Path(source).expanduser().exists()


def canonical(source: str) -> str:
    """A local path made absolute (so one folder is one dataset), a repo id as given."""
    return str(Path(source).expanduser().resolve()) if is_local(source) else source


@lru_cache(maxsize=16)
def load_splits(source: str, revision: str | None) -> Any:
    """The dataset's splits (a `DatasetDict`), loaded once per process."""
    datasets = library()
    path = Path(source)
    try:
        if path.is_file():
            return datasets.load_dataset(path.suffix.lstrip(".") or "parquet", data_files=str(path))
        return datasets.load_dataset(source, revision=revision)
    except FileNotFoundError as error:
        raise DataError(f"hf:{source}: not found ({error}); give a Hub repo id (e.g. {PAIRCAMS_REPO}) or a local folder in the "
                        "Hub's format (data/<split>-*.parquet)") from None
    except Exception as error:  # the library's errors for unreachable repos, bad files, offline mode are many
        if "offline" in str(error).lower() or "connect" in str(error).lower():
            raise DataError(f"hf:{source}: not in the local Hugging Face cache and the Hub cannot be reached ({type(error).__name__}); "
                            "download it once with internet, or give a local copy") from None
        raise DataError(f"hf:{source}: cannot be read as a dataset ({type(error).__name__}: {error})") from None


def load_split(source: str, revision: str | None, name: str) -> Any:
    return load_splits(source, revision)[name]


@lru_cache(maxsize=64)
def _undecoded(source: str, revision: str | None, split: str, column: str) -> Any:
    """The split with its image column left as bytes, for decoding by bench's own decoder."""
    datasets = library()
    return load_split(source, revision, split).cast_column(column, datasets.Image(decode=False))


def locator(source: str, revision: str | None, split: str, column: str, row: int) -> str:
    return f"{LOCATOR}{quote(source, safe='')}/{quote(revision or '', safe='')}/{split}/{quote(column, safe='')}/{row}"


def image_file(path: str) -> io.BytesIO | str:
    """What PIL opens for a record's path: the image bytes of a Hub row (or the file it names)."""
    source, revision, split, column, row = path[len(LOCATOR):].split("/")
    value = _undecoded(unquote(source), unquote(revision) or None, split, unquote(column))[int(row)][unquote(column)]
    if not value:
        raise OSError(f"{path}: the row holds no image (its {unquote(column)} is empty)")
    if value.get("bytes"):
        return io.BytesIO(value["bytes"])
    if value.get("path"):
        return value["path"]
    raise OSError(f"{path}: the row holds no image")
