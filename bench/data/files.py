"""The one walker for image files on disk, shared by every folder-based dataset."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

UNREADABLE_FOLDER = "cannot read this folder"  # how a walk's folder rejects begin
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".heic", ".heif"}
)


@dataclass
class Walk:
    """Image files below a folder, sorted by POSIX relative path, and the folders or files that
    could not be read (never dropped silently: each becomes a reject with the reason)."""

    files: list[Path] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)  # {"path": ..., "reason": ...}


def walk_images(folder: Path) -> Walk:
    """Image files (by extension) below `folder`; hidden files and folders are skipped."""
    found: list[tuple[str, Path]] = []
    walk = Walk()
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as error:
            walk.unreadable.append({"path": str(current), "reason": f"{UNREADABLE_FOLDER} ({error.strerror or error}); "
                                                                   "its images are left out"})
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    pending.append(Path(entry.path))
                elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                    path = Path(entry.path)
                    found.append((path.relative_to(folder).as_posix(), path))
            except OSError as error:
                walk.unreadable.append({"path": entry.path, "reason": f"cannot read ({error.strerror or error})"})
    walk.files = [path for _, path in sorted(found)]
    walk.unreadable.sort(key=lambda problem: problem["path"])
    return walk


def file_state(path: str | Path, content: bool = False) -> str:
    """What a cheap check can tell about a file's content: its size and modification time (ns).
    A file replaced under the same name almost always changes one of them; one rewritten with
    the same size and its old timestamp restored does not. `content`: its size and a hash of
    every byte instead, which tells them apart at the cost of reading the file."""
    status = os.stat(path)
    if not content:
        return f"{status.st_size}:{status.st_mtime_ns}"
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"{status.st_size}:b2:{digest.hexdigest()}"
