"""The store's cheap side: each table's name, and what a table on this machine's disk was when
bench last read or committed it (its id, version and fingerprint), kept in a small JSON file
beside the tables, `<store>/.state/<table>.json`. Deciding that a result cell is current then
needs neither LanceDB nor pyarrow.

The file counts only while the table's `_versions` folder lists exactly the manifests it was
written against (each one's name, size, modification time and inode): any commit, rebuild or
drop, by bench or by anything else, changes that listing, and the store is then read the exact
way (bench.store), which writes the file anew. A missing or damaged file is the same: read the
exact way. Tables in object storage are always read the exact way."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.naming import encoder_slug, safe_part

STATE_FOLDER = ".state"
VERSIONS_FOLDER = "_versions"  # a Lance table's manifests, one per committed version
FORMAT = 1


def table_name(dataset: str, encoder: str) -> str:
    """A LanceDB-safe table name that still reads as dataset + encoder."""
    return safe_part(f"{dataset}__{encoder_slug(encoder)}")


def local_folder(uri: str) -> Path | None:
    """The store's folder, for a store on this machine's disk (None: object storage)."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    return Path(uri.removeprefix("file://"))


@dataclass(frozen=True)
class TableState:
    """What a table held when bench last saw it."""

    table_id: str | None  # the id the table was created with (None: made without one)
    version: int
    fingerprint: dict[str, Any]


def manifests(folder: Path, name: str) -> str | None:
    """A digest of the table's version listing; None where the table has no readable folder here."""
    try:
        with os.scandir(folder / f"{name}.lance" / VERSIONS_FOLDER) as entries:
            listed = sorted((entry.name, entry.stat(follow_symlinks=False)) for entry in entries)
    except OSError:  # no such folder, or one that cannot be listed: the exact read says which
        return None
    digest = hashlib.blake2b(digest_size=16)
    for entry, status in listed:
        digest.update(f"{entry}\x1f{status.st_size}\x1f{status.st_mtime_ns}\x1f{status.st_ino}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _path(folder: Path, name: str) -> Path:
    return folder / STATE_FOLDER / f"{name}.json"


def remember(uri: str, name: str, state: TableState, listing: str | None) -> None:
    """Record `state` as what the table holds at `listing` (its `manifests` digest, taken before
    the state was read and checked unchanged after). Written atomically; a store that cannot
    take the file (read-only, full) only stays on the exact path."""
    folder = local_folder(uri)
    if folder is None or listing is None:
        return
    document = {"format": FORMAT, "table": name, "manifests": listing, "table_id": state.table_id, "version": state.version,
                "fingerprint": state.fingerprint}
    target = _path(folder, name)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # concurrent writers never share it
    try:
        target.parent.mkdir(exist_ok=True)
        temporary.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
        os.replace(temporary, target)
    except OSError:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass


def forget(uri: str, name: str) -> None:
    """Remove the table's record (it is dropped)."""
    folder = local_folder(uri)
    if folder is not None:
        try:
            _path(folder, name).unlink(missing_ok=True)
        except OSError:
            pass


def recall(uri: str, name: str) -> TableState | None:
    """The table's recorded state, where the record is whole and the table has not changed since
    it was written; None means: read the store the exact way."""
    folder = local_folder(uri)
    if folder is None:
        return None
    try:
        document = json.loads(_path(folder, name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("table") != name:
        return None
    table_id, version, fingerprint = document.get("table_id"), document.get("version"), document.get("fingerprint")
    if not (table_id is None or isinstance(table_id, str)) or type(version) is not int or not isinstance(fingerprint, dict):
        return None
    listing = document.get("manifests")
    if not isinstance(listing, str) or listing != manifests(folder, name):
        return None
    return TableState(table_id, version, fingerprint)
